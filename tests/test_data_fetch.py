"""fetch against a real HTTP server on 127.0.0.1: verified files land, bad ones leave nothing.

The server serves bytes the test made; the registry entry under test points its SHA-256 and
size at those bytes, so the real download code path runs end to end without the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from batchlab.cli import main
from batchlab.data import DATASETS, RemoteFile, fetch, get_spec, load_arrays
from batchlab.data import cifar
from batchlab.errors import ChecksumError, DataError, UserError

MODE_FULL = "full"
MODE_TRUNCATE = "truncate"  # declare the full Content-Length, send half, close
MODE_CORRUPT = "corrupt"  # full length, one byte flipped
MODE_OVERDECLARE = "overdeclare"  # declare 100 bytes more than the whole body, send it, close


class FileServer:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` (path -> bytes) in ``modes``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "not here")
                    return
                mode = server.modes.get(self.path, MODE_FULL)
                if mode == MODE_CORRUPT:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                declared = len(body) + (100 if mode == MODE_OVERDECLARE else 0)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == MODE_TRUNCATE else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with FileServer() as running:
        yield running


def remote_for(name: str, payload: bytes, urls=()) -> RemoteFile:
    return RemoteFile(name, list(urls) or ["http://127.0.0.1:9/unused/" + name], hashlib.sha256(payload).hexdigest(), len(payload))


def register_tiny(monkeypatch, files: list[RemoteFile], name: str = "tiny") -> None:
    spec = dataclasses.replace(get_spec("mnist"), name=name, files=tuple(files), system_dirs=())
    monkeypatch.setitem(DATASETS, name, spec)


IDX_NAMES = [f.name for f in get_spec("mnist").files]


def payloads(seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 256, size=1000 + 37 * i, dtype=np.uint8).tobytes() for i, name in enumerate(IDX_NAMES)}


def serve(server: FileServer, files: dict[str, bytes], prefix="/mirror/") -> str:
    for name, body in files.items():
        server.files[prefix + name] = body
    return server.url + prefix


def test_good_files_land_verified(tmp_path, monkeypatch, server):
    files = payloads()
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    lines = []

    paths = fetch("tiny", tmp_path, base_url=base, progress=False, log=lines.append)

    assert paths == [tmp_path / "tiny" / n for n in IDX_NAMES]
    for name, body in files.items():
        assert (tmp_path / "tiny" / name).read_bytes() == body
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == sorted(IDX_NAMES)  # no temp files
    assert len([line for line in lines if line.startswith("downloaded")]) == 4

    # A second fetch finds everything present and downloads nothing.
    server.requests.clear()
    lines.clear()
    fetch("tiny", tmp_path, base_url=base, progress=False, log=lines.append)
    assert server.requests == []
    assert lines == [f"tiny is already present in {tmp_path / 'tiny'}; nothing to fetch"]


def test_corrupted_file_raises_checksum_error_and_keeps_nothing(tmp_path, monkeypatch, server):
    files = payloads()
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    server.modes["/mirror/" + IDX_NAMES[0]] = MODE_CORRUPT
    expected = hashlib.sha256(files[IDX_NAMES[0]]).hexdigest()
    flipped = bytes([files[IDX_NAMES[0]][0] ^ 0xFF]) + files[IDX_NAMES[0]][1:]
    actual = hashlib.sha256(flipped).hexdigest()

    with pytest.raises(ChecksumError) as caught:
        fetch("tiny", tmp_path, base_url=base, progress=False)

    message = str(caught.value)
    assert IDX_NAMES[0] in message and expected in message and actual in message
    assert list((tmp_path / "tiny").iterdir()) == []


def test_truncated_transfer_raises_data_error_and_keeps_nothing(tmp_path, monkeypatch, server):
    files = payloads()
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    server.modes["/mirror/" + IDX_NAMES[0]] = MODE_TRUNCATE

    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is truncated: received 500 of 1,000 bytes") as caught:
        fetch("tiny", tmp_path, base_url=base, progress=False)

    assert not isinstance(caught.value, ChecksumError)
    assert list((tmp_path / "tiny").iterdir()) == []


def test_body_shorter_than_its_content_length_is_truncated(tmp_path, monkeypatch, server):
    # Body complete by the published size and digest, but the server promised more: not trusted.
    files = payloads()
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    server.modes["/mirror/" + IDX_NAMES[0]] = MODE_OVERDECLARE
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is truncated: received 1,000 of 1,100 bytes"):
        fetch("tiny", tmp_path, base_url=base, progress=False)
    assert list((tmp_path / "tiny").iterdir()) == []


def test_short_body_is_caught_by_published_size(tmp_path, monkeypatch, server):
    body = b"abc" * 100
    register_tiny(monkeypatch, [RemoteFile("f.bin", ["x"], hashlib.sha256(body).hexdigest(), len(body) + 1)])
    base = serve(server, {"f.bin": body})
    with pytest.raises(DataError, match=r"f.bin is truncated: received 300 of 301 bytes"):
        fetch("tiny", tmp_path, base_url=base, progress=False)
    assert list((tmp_path / "tiny").iterdir()) == []


def test_mirrors_are_tried_in_order(tmp_path, monkeypatch, server):
    files = payloads(seed=1)
    remotes = []
    for name, body in files.items():
        server.files["/broken/" + name] = body
        server.modes["/broken/" + name] = MODE_TRUNCATE
        server.files["/good/" + name] = body
        urls = [server.url + prefix + name for prefix in ("/missing/", "/broken/", "/good/")]
        remotes.append(remote_for(name, body, urls))
    register_tiny(monkeypatch, remotes)

    fetch("tiny", tmp_path, progress=False)

    for name, body in files.items():
        assert (tmp_path / "tiny" / name).read_bytes() == body
    first = IDX_NAMES[0]
    assert server.requests[:3] == ["/missing/" + first, "/broken/" + first, "/good/" + first]
    assert len(server.requests) == 12


def test_all_mirrors_failing_is_one_data_error(tmp_path, monkeypatch, server):
    register_tiny(monkeypatch, [remote_for("f.bin", b"x" * 10, [server.url + "/a/f.bin", server.url + "/b/f.bin"])])
    with pytest.raises(DataError, match=r"could not download f.bin: .*/a/f.bin: HTTP 404.*/b/f.bin: HTTP 404"):
        fetch("tiny", tmp_path, progress=False)
    assert list((tmp_path / "tiny").iterdir()) == []


def test_connection_refused_is_a_data_error(tmp_path, monkeypatch):
    register_tiny(monkeypatch, [remote_for("f.bin", b"x" * 10)])
    with FileServer() as stopped:
        dead_url = stopped.url
    with pytest.raises(DataError, match=r"connection failed"):
        fetch("tiny", tmp_path, base_url=dead_url, progress=False)
    assert list((tmp_path / "tiny").iterdir()) == []


def test_base_url_scheme_is_checked(tmp_path):
    with pytest.raises(UserError, match=r"base URL 'ftp://host/' has scheme 'ftp'; allowed: http, https, file"):
        fetch("mnist", tmp_path, base_url="ftp://host/", progress=False)


def test_mnist_5k_needs_no_fetch(tmp_path):
    lines = []
    paths = fetch("mnist-5k", tmp_path, progress=False, log=lines.append)
    assert [path.name for path in paths] == ["mnist5k-images-idx3-ubyte.gz", "mnist5k-labels-idx1-ubyte.gz"]
    assert "SHA-256 verified" in lines[0] and "nothing to fetch" in lines[0]
    assert not (tmp_path / "mnist-5k").exists()


def tiny_cifar_archive(records: int) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in cifar.ALL_BATCHES:
            labels = rng.integers(0, 10, size=(records, 1), dtype=np.uint8)
            pixels = rng.integers(0, 256, size=(records, 3072), dtype=np.uint8)
            payload = np.concatenate([labels, pixels], axis=1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_cifar10_fetch_downloads_verifies_and_extracts(tmp_path, monkeypatch, server):
    archive = tiny_cifar_archive(records=3)
    spec = dataclasses.replace(
        get_spec("cifar10"),
        files=(remote_for("cifar-10-binary.tar.gz", archive),),
        n_train=15,
        n_test=3,
        records_per_file=3,
    )
    monkeypatch.setitem(DATASETS, "cifar10", spec)
    base = serve(server, {"cifar-10-binary.tar.gz": archive})

    paths = fetch("cifar10", tmp_path, base_url=base, progress=False)

    batches_dir = tmp_path / "cifar10" / "cifar-10-batches-bin"
    assert paths == [batches_dir / name for name in cifar.ALL_BATCHES]
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]
    raw = load_arrays("cifar10", tmp_path)
    assert raw.train_x.shape == (15, 3, 32, 32) and raw.test_y.shape == (3,)


def test_cli_fetch_through_main(tmp_path, monkeypatch, server, capsys):
    files = payloads(seed=3)
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)

    code = main(["data", "fetch", "tiny", "--data-dir", str(tmp_path), "--base-url", base, "--no-progress"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.count("SHA-256 verified") == 4
    assert "tiny: ready (4 files)" in out
    assert all((tmp_path / "tiny" / n).is_file() for n in IDX_NAMES)


def test_cli_fetch_checksum_failure_is_one_line_exit_2(tmp_path, monkeypatch, server, capsys):
    files = payloads(seed=4)
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    server.modes["/mirror/" + IDX_NAMES[1]] = MODE_CORRUPT

    code = main(["data", "fetch", "tiny", "--data-dir", str(tmp_path), "--base-url", base, "--no-progress"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("batchlab: error: train-labels-idx1-ubyte.gz from ") and "SHA-256" in err
    assert len(err.strip().splitlines()) == 1
    # The file before the corrupt one was verified and kept; the corrupt one left nothing.
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [IDX_NAMES[0]]


def test_keeps_a_verified_file_from_an_earlier_partial_fetch(tmp_path, monkeypatch, server):
    files = payloads(seed=5)
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / IDX_NAMES[0]).write_bytes(files[IDX_NAMES[0]])

    fetch("tiny", tmp_path, base_url=base, progress=False)

    assert "/mirror/" + IDX_NAMES[0] not in server.requests
    assert len(server.requests) == 3


def test_a_leftover_file_with_the_wrong_digest_is_downloaded_again(tmp_path, monkeypatch, server):
    files = payloads(seed=6)
    register_tiny(monkeypatch, [remote_for(n, b) for n, b in files.items()])
    base = serve(server, files)
    (tmp_path / "tiny").mkdir()
    stale = tmp_path / "tiny" / IDX_NAMES[2]
    stale.write_bytes(b"\0" * len(files[IDX_NAMES[2]]))  # right size, wrong bytes
    lines = []

    fetch("tiny", tmp_path, base_url=base, progress=False, log=lines.append)

    assert stale.read_bytes() == files[IDX_NAMES[2]]
    assert f"{stale} does not match its published SHA-256; downloading it again" in lines


def test_default_data_dir_follows_environment(tmp_path, monkeypatch):
    from batchlab.data import default_data_dir, resolve_data_dir

    monkeypatch.setenv("BATCHLAB_DATA", str(tmp_path / "env"))
    assert default_data_dir() == tmp_path / "env"
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("BATCHLAB_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "batchlab" / "data"
