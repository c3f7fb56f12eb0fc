"""The Python floor: the streaming script anyone would write with httpx in five minutes.

    python bench/floor_httpx.py BASE_URL [PROMPT...]

Default ``httpx.Client()``, ``client.stream("POST", ...)``, ``iter_lines()``, ``json.loads`` of
each ``data:`` line, and ``choices[0].delta.content`` written to stdout with a flush per event.
No tricks: it is the baseline rill's start-up, throughput and memory are compared with.
"""

import json
import os
import sys

import httpx


def main() -> None:
    base_url = sys.argv[1].rstrip("/")
    prompt = " ".join(sys.argv[2:]) or "hi"
    headers = {"Authorization": f"Bearer {os.environ.get('OPENROUTER_API_KEY', '')}"}
    body = {"model": "x", "messages": [{"role": "user", "content": prompt}], "stream": True}
    with (
        httpx.Client() as client,
        client.stream(
            "POST", f"{base_url}/chat/completions", json=body, headers=headers
        ) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            choices = chunk.get("choices") or []
            content = choices[0]["delta"].get("content") if choices else None
            if content:
                sys.stdout.write(content)
                sys.stdout.flush()


if __name__ == "__main__":
    main()
