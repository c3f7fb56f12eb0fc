"""``-a/--attach``: files, URLs and stdin as content parts, end to end against the fake server
(``rill`` as a subprocess), with the parts byte-checked against the files on disk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import run

#: A few bytes that each type's detection recognises, then filler (the fake checks base64 only).
MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n", "image/png"),
    "jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
    "gif": (b"GIF89a\x01\x00\x01\x00", "image/gif"),
    "webp": (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
    "wav": (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
    "mp3": (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
}


def make(folder: Path, name: str, kind: str, size: int = 2000) -> Path:
    """A file of ``kind``'s magic bytes followed by varied filler, ``size`` bytes long."""
    head = MAGIC[kind][0]
    filler = hashlib.sha256(name.encode()).digest() * (size // 32 + 1)
    path = folder / name
    path.write_bytes((head + filler)[:size])
    return path


def rill(server: FakeOpenRouter, *args: str, **kw: Any) -> Any:
    return run(["--base-url", server.url, "-m", "test/m", *args], **kw)


def user_content(server: FakeOpenRouter, request: int = -1) -> list[dict[str, Any]]:
    content = server.chat_requests[request].body["messages"][-1]["content"]
    assert isinstance(content, list), content
    return content


def data_of(url: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert url.startswith(prefix), url[:60]
    return base64.b64decode(url[len(prefix) :], validate=True)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def history_files(home: Path) -> list[Path]:
    return [p for p in (home / "history").rglob("*") if p.is_file()]


# -- the parts -----------------------------------------------------------------------------------


def test_three_types_in_one_message_are_byte_exact(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    png = make(tmp_path, "shot.png", "png", 3000)
    pdf = make(tmp_path, "invoice.pdf", "pdf", 5000)
    wav = make(tmp_path, "note.wav", "wav", 4000)
    done = rill(fake_server, "-a", str(png), "--attach", str(pdf), "-a", str(wav), "describe")
    assert done.returncode == 0, done.stderr
    text, image, document, audio = user_content(fake_server)
    assert text == {"type": "text", "text": "describe"}
    assert image["type"] == "image_url"
    assert data_of(image["image_url"]["url"], "image/png") == png.read_bytes()
    assert document["type"] == "file"
    assert document["file"]["filename"] == "invoice.pdf"
    assert data_of(document["file"]["file_data"], "application/pdf") == pdf.read_bytes()
    assert audio == {
        "type": "input_audio",
        "input_audio": {
            "data": base64.b64encode(wav.read_bytes()).decode(),
            "format": "wav",
        },
    }
    assert [a["sha256"] for a in fake_server.attachments] == [
        sha(p.read_bytes()) for p in (png, pdf, wav)
    ]


@pytest.mark.parametrize("kind", sorted(MAGIC))
def test_each_type_is_recognised_from_its_bytes(
    fake_server: FakeOpenRouter, tmp_path: Path, kind: str
) -> None:
    path = make(tmp_path, "file.bin", kind)  # the name says nothing: the bytes do
    done = rill(fake_server, "-a", str(path), "what is it")
    assert done.returncode == 0, done.stderr
    [got] = fake_server.attachments
    mime = MAGIC[kind][1]
    expected_kind = {"application/pdf": "file", "audio/wav": "input_audio"}.get(mime)
    if mime == "audio/mpeg":
        expected_kind = "input_audio"
    assert got["kind"] == (expected_kind or "image_url")
    assert got["sha256"] == sha(path.read_bytes())
    if got["kind"] != "input_audio":
        assert got["mime"] == mime
    else:
        assert got["mime"] == {"audio/wav": "audio/wav", "audio/mpeg": "audio/mp3"}[mime]


def test_the_name_decides_when_the_bytes_do_not_and_the_bytes_win_over_it(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    unknown = tmp_path / "scan.jpeg"
    unknown.write_bytes(b"no magic here" * 10)
    misnamed = make(tmp_path, "really-a-png.pdf", "png")
    done = rill(fake_server, "-a", str(unknown), "-a", str(misnamed), "x")
    assert done.returncode == 0, done.stderr
    assert [a["mime"] for a in fake_server.attachments] == ["image/jpeg", "image/png"]


def test_attach_type_and_a_per_file_type_force_it(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    raw = tmp_path / "blob.dat"
    raw.write_bytes(b"\x00\x01\x02 plain bytes" * 20)
    done = rill(fake_server, "-a", str(raw), "--attach-type", "pdf", "x")
    assert done.returncode == 0, done.stderr
    assert fake_server.attachments[-1]["mime"] == "application/pdf"
    done = rill(fake_server, "-a", f"{raw};type=image/webp", "x")
    assert done.returncode == 0, done.stderr
    assert fake_server.attachments[-1]["mime"] == "image/webp"


def test_a_url_is_passed_untouched_and_never_fetched(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    image = "https://example.com/cats/tabby.JPG?size=large&v=2#top"
    document = "http://example.org/report.pdf"
    done = rill(fake_server, "-a", image, "-a", document, "compare")
    assert done.returncode == 0, done.stderr
    _text, first, second = user_content(fake_server)
    assert first == {"type": "image_url", "image_url": {"url": image}}
    assert second == {"type": "file", "file": {"filename": document, "file_data": document}}
    assert len(fake_server.requests) == 1  # the only request rill made is the chat's


def test_stdin_is_the_attachment_with_a_dash(fake_server: FakeOpenRouter, tmp_path: Path) -> None:
    data = make(tmp_path, "x", "jpg").read_bytes()
    done = rill(fake_server, "-a", "-", "what is in this photo", input=data)
    assert done.returncode == 0, done.stderr
    text, image = user_content(fake_server)
    assert text == {"type": "text", "text": "what is in this photo"}  # stdin is not prompt text
    assert data_of(image["image_url"]["url"], "image/jpeg") == data


# -- what cannot be attached: exit 2 naming it, nothing sent, nothing recorded -------------------


def _refused(server: FakeOpenRouter, home: Path, *args: str, input: bytes | None = None) -> str:
    done = rill(server, *args, "x", input=input)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.startswith("rill: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert server.chat_requests == []
    assert history_files(home) == []
    return stderr


def test_missing_directory_empty_and_unrecognised_files_are_usage_errors(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    good = make(tmp_path, "good.png", "png")
    missing = tmp_path / "gone.png"
    assert "gone.png" in _refused(fake_server, rill_env, "-a", str(good), "-a", str(missing))
    assert str(tmp_path) in _refused(fake_server, rill_env, "-a", str(tmp_path))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "empty.png" in _refused(fake_server, rill_env, "-a", str(empty))
    notes = tmp_path / "notes.txt"
    notes.write_text("just text\n")
    message = _refused(fake_server, rill_env, "-a", str(notes))
    assert "notes.txt" in message and "--attach-type" in message
    assert "stdin" in _refused(fake_server, rill_env, "-a", "-", input=b"plain text")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_usage_error(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    secret = make(tmp_path, "secret.png", "png")
    secret.chmod(0)
    assert "secret.png" in _refused(fake_server, rill_env, "-a", str(secret))


def test_bad_urls_and_types_are_usage_errors(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    assert "audio" in _refused(fake_server, rill_env, "-a", "https://example.com/song.mp3")
    assert "--attach-type" in _refused(fake_server, rill_env, "-a", "https://example.com/img?id=3")
    path = make(tmp_path, "a.png", "png")
    assert "text/plain" in _refused(
        fake_server, rill_env, "-a", str(path), "--attach-type", "text/plain"
    )
    assert "once" in _refused(fake_server, rill_env, "-a", "-", "-a", "-", input=b"x")


# -- history -------------------------------------------------------------------------------------


def test_continuing_resends_the_file_after_it_is_gone(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    pdf = make(tmp_path, "contract.pdf", "pdf", 20_000)
    data = pdf.read_bytes()
    assert rill(fake_server, "-a", str(pdf), "summarise").returncode == 0
    pdf.unlink()
    done = rill(fake_server, "-c", "and the termination clause?")
    assert done.returncode == 0, done.stderr
    first_turn = fake_server.chat_requests[-1].body["messages"][0]
    assert first_turn["content"][0] == {"type": "text", "text": "summarise"}
    assert data_of(first_turn["content"][1]["file"]["file_data"], "application/pdf") == data
    stored = rill_env / "history" / "attachments" / sha(data)
    assert stored.read_bytes() == data
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    for path in history_files(rill_env):  # no chat file or journal holds the base64
        assert base64.b64encode(data[:300]) not in path.read_bytes(), path


def test_a_file_is_stored_once_and_removed_with_the_last_chat_using_it(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    shared = make(tmp_path, "logo.png", "png")
    own = make(tmp_path, "chart.gif", "gif")
    assert rill(fake_server, "-a", str(shared), "first").returncode == 0
    assert rill(fake_server, "-a", str(shared), "-a", str(own), "second").returncode == 0
    blobs = rill_env / "history" / "attachments"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        sha(p.read_bytes()) for p in (shared, own)
    )
    listed = json.loads(run(["history", "list", "--json"]).stdout)
    second, first = (row["id"] for row in listed)

    shown = run(["history", "show", second])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    size = shared.stat().st_size
    digest = sha(shared.read_bytes())
    assert f"[attachment] logo.png · image/png · {size} bytes · sha256:{digest}" in text
    assert "[attachment] chart.gif · image/gif" in text
    as_json = json.loads(run(["history", "show", second, "--json"]).stdout)
    records = as_json["exchanges"][0]["messages"][-1]["content"][1:]
    assert records[0] == {
        "type": "attachment",
        "name": "logo.png",
        "mime": "image/png",
        "size": size,
        "sha256": sha(shared.read_bytes()),
    }

    assert run(["history", "rm", second]).returncode == 0
    assert [p.name for p in blobs.iterdir()] == [sha(shared.read_bytes())]  # first still uses it
    assert run(["history", "rm", first]).returncode == 0
    assert list(blobs.iterdir()) == []


def test_a_url_is_recorded_and_resent_as_its_url(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    url = "https://example.com/a.webp"
    assert rill(fake_server, "-a", url, "look").returncode == 0
    assert rill(fake_server, "-c", "again").returncode == 0
    assert fake_server.chat_requests[-1].body["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": url},
    }
    shown = run(["history", "show", "last"]).stdout.decode()
    assert f"[attachment] {url} · image/webp" in shown


def test_no_history_stores_nothing(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    path = make(tmp_path, "a.mp3", "mp3")
    done = rill(fake_server, "--no-history", "-a", str(path), "transcribe")
    assert done.returncode == 0, done.stderr
    assert not (rill_env / "history").exists()


def test_a_missing_stored_copy_stops_the_continuation(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    path = make(tmp_path, "a.png", "png")
    assert rill(fake_server, "-a", str(path), "x").returncode == 0
    (rill_env / "history" / "attachments" / sha(path.read_bytes())).unlink()
    done = rill(fake_server, "-c", "more")
    assert done.returncode == 3, done.stderr
    assert b"a.png" in done.stderr and b"missing" in done.stderr
    assert len(fake_server.chat_requests) == 1


# -- dry run -------------------------------------------------------------------------------------


def test_dry_run_shows_type_name_size_and_hash_never_the_data(tmp_path: Path) -> None:
    image = make(tmp_path, "big.png", "png", 300_000)
    done = run(["--dry-run", "-a", str(image), "describe"])
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert len(out) < 2000
    assert f"image/png big.png 300000 bytes sha256:{sha(image.read_bytes())}" in out
    assert "base64," not in out


# -- the fake server checks parts as OpenRouter does ----------------------------------------------


def test_a_malformed_part_is_openrouters_400(fake_server: FakeOpenRouter) -> None:
    import rill as library

    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
            ],
        }
    ]
    events = list(library.stream_chat(messages, base_url=fake_server.url, model="test/m"))
    error = events[-1]
    assert isinstance(error, library.Error)
    assert error.status == 400
    assert "messages[0].content[1].image_url.url" in error.message


def test_attach_completes_file_names_and_attach_type_the_types() -> None:
    env = {**os.environ, "_RILL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "rill -a "}
    assert run([], env=env).stdout.strip() == b"_files"  # zsh's file completion
    env = {**env, "_RILL_COMPLETE": "complete_bash", "COMP_WORDS": "rill --attach-type ima"}
    done = run([], env={**env, "COMP_CWORD": "2"})
    assert done.stdout.split() == [b"image/png", b"image/jpeg", b"image/gif", b"image/webp"]


def test_fake_server_log_names_each_file_received(tmp_path: Path, rill_env: Path) -> None:
    import subprocess
    import time

    from tests.e2e import RILL, stop

    log = tmp_path / "requests.jsonl"
    server = subprocess.Popen(
        [*RILL, "fake-server", "--no-auth", "--log", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().decode().strip()
        image = make(tmp_path, "scan.png", "png")
        done = run(["--base-url", url, "-m", "test/m", "-a", str(image), "read it"])
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 5
        while not log.exists() or not log.read_bytes().endswith(b"\n"):
            assert time.monotonic() < deadline, "no log line"
            time.sleep(0.01)
        [entry] = [json.loads(line) for line in log.read_text().splitlines()]
    finally:
        stop([server])
    assert entry["messages"] == [{"role": "user", "text": "read it"}]
    assert entry["attachments"] == [
        {
            "kind": "image_url",
            "mime": "image/png",
            "name": None,
            "size": image.stat().st_size,
            "sha256": sha(image.read_bytes()),
        }
    ]
