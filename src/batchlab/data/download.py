"""Downloading a dataset: mirrors in order, SHA-256 checked before a file is put in place.

Each missing file is streamed into a temporary file in its target directory while its SHA-256
and length are computed. Only when the length matches (the server's Content-Length and the
published size) and the digest matches the published one is the temporary file renamed to its
final name (:func:`batchlab.files.atomic_write`). On any failure the temporary file is deleted,
so no partial or unverified file ever sits where the readers look.

A mirror that fails (connection error, HTTP error, short transfer, wrong digest) is followed by
the next one. When all fail, the error is a :class:`ChecksumError` if some mirror served a file
with the wrong digest, else a :class:`DataError` saying what happened at each.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from batchlab.data.cifar import ALL_BATCHES, extract_batches
from batchlab.data.mnist5k import verify_embedded_file
from batchlab.data.arrays import locate, readable_files
from batchlab.data.paths import dataset_dir
from batchlab.data.registry import FORMAT_CIFAR10_BINARY, FORMAT_EMBEDDED_IDX, RemoteFile, get_spec
from batchlab.errors import ChecksumError, DataError, UserError
from batchlab.files import atomic_write

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
USER_AGENT = "batchlab (dataset download)"
_ALLOWED_SCHEMES = ("http", "https", "file")

Log = Callable[[str], None]


def fetch(
    name: str,
    data_dir: Path | str | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    log: Log | None = None,
) -> list[Path]:
    """Make dataset ``name`` available on disk and return the files its reader uses.

    Files already present (in ``<data_dir>/<name>`` or a system directory such as Debian's) are
    not downloaded again. ``base_url`` replaces the registry's mirrors: file ``F`` is fetched from
    ``<base_url>/F``. ``progress`` shows a byte progress bar on stderr; ``log`` receives one line
    per action taken.
    """
    say = log or (lambda line: None)
    spec = get_spec(name)
    if base_url is not None:
        _check_base_url(base_url)
    if spec.format == FORMAT_EMBEDDED_IDX:
        location = locate(spec, data_dir)
        files = readable_files(spec, location)
        for path in files:
            verify_embedded_file(path)
        say(f"{name} ships inside batchlab ({location}, SHA-256 verified); nothing to fetch")
        return files

    location = locate(spec, data_dir)
    if location is not None:
        say(f"{name} is already present in {location}; nothing to fetch")
        return readable_files(spec, location)

    target_dir = dataset_dir(spec, data_dir)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {target_dir}: {error.strerror or error}; allowed: a writable --data-dir") from None

    for remote in spec.files:
        destination = target_dir / remote.name
        if destination.is_file():
            # Left by an earlier, interrupted fetch or put there by hand: kept only if intact.
            if file_sha256(destination) == remote.sha256:
                say(f"{destination} already present (SHA-256 verified)")
                continue
            say(f"{destination} does not match its published SHA-256; downloading it again")
        urls = _urls(remote, base_url)
        download_verified(remote, destination, urls, progress=progress)
        say(f"downloaded {destination} ({remote.size:,} bytes, SHA-256 verified)")

    if spec.format == FORMAT_CIFAR10_BINARY:
        archive = target_dir / spec.files[0].name
        batches = extract_batches(archive, target_dir)
        say(f"extracted {len(ALL_BATCHES)} batch files to {batches}")

    location = locate(spec, data_dir)
    if location is None:  # pragma: no cover - the steps above either fill the directory or raise
        raise DataError(f"{name}: files were fetched to {target_dir} but are not complete there")
    return readable_files(spec, location)


def download_verified(remote: RemoteFile, destination: Path, urls: list[str], *, progress: bool = False) -> None:
    """Download ``remote`` from the first of ``urls`` that serves it intact, to ``destination``."""
    failures: list[str] = []
    checksum_failure: str | None = None
    for url in urls:
        try:
            _download_one(remote, destination, url, progress=progress)
            return
        except ChecksumError as error:
            checksum_failure = str(error)
            failures.append(f"{url}: wrong SHA-256")
        except DataError as error:
            failures.append(str(error))
    if checksum_failure is not None:
        raise ChecksumError(checksum_failure if len(urls) == 1 else f"{checksum_failure} (also tried: {'; '.join(failures)})")
    raise DataError(f"could not download {remote.name}: {'; '.join(failures)}")


def _download_one(remote: RemoteFile, destination: Path, url: str, *, progress: bool) -> None:
    """Stream ``url`` into a temporary file beside ``destination``; check, then rename into place
    (:func:`batchlab.files.atomic_write`: a failed check keeps nothing)."""
    atomic_write(destination, lambda sink: _stream_verified(remote, url, sink, progress=progress))


def _stream_verified(remote: RemoteFile, url: str, sink: BinaryIO, *, progress: bool) -> None:
    """Copy ``url`` into ``sink``; raise unless its length and SHA-256 are the published ones."""
    digest = hashlib.sha256()
    received = 0
    declared: int | None = None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            declared = _content_length(response)
            with _progress_bar(remote.name, declared or remote.size, progress) as bar:
                while True:
                    chunk = response.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    sink.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise DataError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise DataError(f"{url}: connection failed ({error.reason})") from None
    except (http.client.HTTPException, OSError) as error:
        # IncompleteRead, a reset connection or a timeout in the middle of the body.
        raise DataError(f"{url}: transfer of {remote.name} failed after {received:,} bytes ({error!r})") from None
    if declared is not None and received < declared:
        raise DataError(
            f"{url}: transfer of {remote.name} is truncated: received {received:,} of {declared:,} bytes"
        )
    if received < remote.size:
        raise DataError(
            f"{url}: transfer of {remote.name} is truncated: received {received:,} of {remote.size:,} bytes"
        )
    actual = digest.hexdigest()
    if actual != remote.sha256:
        raise ChecksumError(
            f"{remote.name} from {url} failed its SHA-256 check: expected {remote.sha256}, got {actual} "
            f"({received:,} bytes); nothing was kept"
        )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file on disk, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _urls(remote: RemoteFile, base_url: str | None) -> list[str]:
    if base_url is None:
        return list(remote.urls)
    return [base_url.rstrip("/") + "/" + urllib.parse.quote(remote.name)]


def _check_base_url(base_url: str) -> None:
    scheme = urllib.parse.urlparse(base_url).scheme
    if scheme not in _ALLOWED_SCHEMES:
        raise UserError(f"base URL {base_url!r} has scheme {scheme or 'none'!r}; allowed: {', '.join(_ALLOWED_SCHEMES)}")


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _progress_bar(label: str, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not enabled, leave=False)
