"""Pydantic's verdict on strings of each held format: the truth that the string formats a schema
constraint holds are values Pydantic's own parse takes (test/runtime/string-formats-pydantic.test.ts).

Reads {"cases": [{"format": str, "value": str}, ...]} as JSON on stdin and prints
{"pydantic": version, "formats": {format: the format Pydantic's JSON schema writes for the type},
"valid": [true | false | null, ...]}: whether `TypeAdapter(type).validate_json` takes the value
as a JSON string (as `parse()` reads a response), null where the format has no type here.
"""
import datetime
import ipaddress
import json
import sys
import uuid

import pydantic
from pydantic import AnyUrl, Base64Bytes, IPvAnyAddress, IPvAnyInterface, IPvAnyNetwork, TypeAdapter

TYPES = {
    "date-time": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "duration": datetime.timedelta,
    "uuid": uuid.UUID,
    "ipv4": ipaddress.IPv4Address,
    "ipv6": ipaddress.IPv6Address,
    "uri": AnyUrl,
    "ipvanyaddress": IPvAnyAddress,
    "ipv4interface": ipaddress.IPv4Interface,
    "ipv6interface": ipaddress.IPv6Interface,
    "ipvanyinterface": IPvAnyInterface,
    "ipv4network": ipaddress.IPv4Network,
    "ipv6network": ipaddress.IPv6Network,
    "ipvanynetwork": IPvAnyNetwork,
    "base64": Base64Bytes,
}


def main() -> None:
    job = json.load(sys.stdin)
    adapters = {name: TypeAdapter(t) for name, t in TYPES.items()}
    valid = []
    for case in job["cases"]:
        adapter = adapters.get(case["format"])
        if adapter is None:
            valid.append(None)
            continue
        try:
            adapter.validate_json(json.dumps(case["value"]))
            valid.append(True)
        except pydantic.ValidationError:
            valid.append(False)
    formats = {name: a.json_schema().get("format") for name, a in adapters.items()}
    json.dump({"pydantic": pydantic.VERSION, "formats": formats, "valid": valid}, sys.stdout)


if __name__ == "__main__":
    main()
