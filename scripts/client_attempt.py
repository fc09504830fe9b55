"""What a client call handed back or raised, as the client check scripts report it
(scripts/hf_inference_client_check.py, scripts/hf_text_generation_check.py): the tests judge it."""


def attempt(fn):
    """{"ok": value} or {"error": what the client raised: its class, message and HTTP status}."""
    try:
        return {"ok": fn()}
    except Exception as exc:  # the report says what was raised; the test judges it
        response = getattr(exc, "response", None)
        return {"error": {"class": type(exc).__name__, "message": str(exc)[:2000], "status": getattr(response, "status_code", None)}}
