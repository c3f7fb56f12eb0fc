"""The package is whole outside the checkout: the sdist carries what its tests need, the wheel
carries the fake server, the licence, the man page and the shell completions, and the installed
wheel runs ``python -m rill.fake`` on its own.

The build is ``python -m build --no-isolation``: it uses the setuptools of the test environment
(the ``test`` extra), so it needs no network.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where the wheel installs its data files, and the repository file each one is.
DATA_FILES = {
    "share/man/man1/rill.1": "man/rill.1",
    "share/bash-completion/completions/rill": "completions/rill.bash",
    "share/zsh/site-functions/_rill": "completions/_rill",
    "share/fish/vendor_completions.d/rill.fish": "completions/rill.fish",
}
TEST_HELPERS = ["conftest.py", "e2e.py", "faults.py", "chunks.py", "tmux.py", "__init__.py"]


@dataclass
class Built:
    sdist: Path
    wheel: Path
    log: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sdists, wheels = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    yield Built(sdists[0], wheels[0], done.stdout)


def sdist_files(built: Built) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(built.sdist) as tar:
        members = tar.getmembers()
    top = built.sdist.name.removesuffix(".tar.gz") + "/"
    return {m.name.removeprefix(top): m for m in members}


def test_the_build_reports_both_archives(built: Built) -> None:
    assert f"Successfully built {built.sdist.name} and {built.wheel.name}" in built.log


def test_sdist_has_the_licence_docs_and_every_test_helper(built: Built) -> None:
    files = sdist_files(built)
    wanted = ["LICENSE", "README.md", "MANIFEST.in", *DATA_FILES.values(), "completions/rill"]
    wanted += [f"tests/{name}" for name in TEST_HELPERS]
    wanted += ["scripts/gen_docs.py", "scripts/demo"]  # run by test_docs and test_contract_gaps
    wanted += [f"tests/{p.name}" for p in (ROOT / "tests").glob("*.py")]
    wanted += [f"src/rill/fake/{p.name}" for p in (ROOT / "src/rill/fake").glob("*.py")]
    wanted += ["src/rill/serve/page.html"]
    assert [name for name in wanted if name not in files] == []
    assert all(files[name].isfile() for name in wanted)  # links are stored as the files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_wheel_has_the_fake_server_data_files_and_licence(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as whl:
        names = whl.namelist()
        contents = {name: whl.read(name) for name in names}
    version = built.wheel.name.split("-")[1]
    data = f"rill_cli-{version}.data/data/"
    for installed, source in DATA_FILES.items():
        assert contents.get(data + installed) == (ROOT / source).read_bytes(), installed
    fake = {p.name for p in (ROOT / "src/rill/fake").glob("*.py")}
    assert {"__init__.py", "__main__.py", "server.py", "hostile.py"} <= fake
    assert {n.removeprefix("rill/fake/") for n in names if n.startswith("rill/fake/")} == fake
    assert "rill/commands/fake.py" in names
    # rill serve's page is package data: the server reads it from the installed package.
    page = (ROOT / "src/rill/serve/page.html").read_bytes()
    assert contents.get("rill/serve/page.html") == page
    assert "Provides-Extra: serve" in contents[f"rill_cli-{version}.dist-info/METADATA"].decode()
    licence = f"rill_cli-{version}.dist-info/licenses/LICENSE"
    assert contents[licence] == (ROOT / "LICENSE").read_bytes()
    assert b"MIT License" in contents[licence] and b"the rill authors" in contents[licence]
    metadata = contents[f"rill_cli-{version}.dist-info/METADATA"].decode()
    assert "License-Expression: MIT" in metadata
    assert not [n for n in names if n.startswith("tests/")]


def test_the_installed_wheel_serves_the_fake_from_anywhere(built: Built, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet"]
    install += ["--target", str(target), str(built.wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for installed in DATA_FILES:
        assert (target / installed).is_file(), installed
    assert (target / "rill" / "fake" / "__main__.py").is_file()
    # -S: no site-packages, so nothing but the installed copy (and the standard library) is seen.
    env = {**os.environ, "PYTHONPATH": str(target)}
    command = [sys.executable, "-S", "-m", "rill.fake", "--port", "0", "--no-auth"]
    work = tmp_path / "elsewhere"
    work.mkdir()
    with subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert select.select([proc.stdout], [], [], 15)[0], "no URL line within 15 s"
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v1"), url
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url + "/models", timeout=5) as resp:
                assert json.loads(resp.read())["data"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import rill.fake; print(rill.fake.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(target)
