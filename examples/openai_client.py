"""The official `openai` Python client against `rfid-moe serve` (start the server first):

    npx rfid-moe serve examples/models/mixtral-tiny-shakespeare
    pip install openai
    python examples/openai_client.py            # or RFID_MOE_URL=http://host:port/v1
"""

import os

import openai

client = openai.OpenAI(base_url=os.environ.get("RFID_MOE_URL", "http://127.0.0.1:8000/v1"), api_key="not-needed")
model = "mixtral-tiny-shakespeare"

# one completion
done = client.completions.create(model=model, prompt="ROMEO:\n", max_tokens=32, temperature=0)
print(done.choices[0].text, "\n", done.usage)

# streamed, token by token
stream = client.completions.create(model=model, prompt="JULIET:\n", max_tokens=32, temperature=0.8, seed=1, stream=True)
for chunk in stream:
    print(chunk.choices[0].text if chunk.choices else "", end="", flush=True)
print()

# errors are the client's typed exceptions
try:
    client.completions.create(model="no-such-model", prompt="x")
except openai.NotFoundError as err:
    print(f"404: {err.message}")
