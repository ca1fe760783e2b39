"""Multi30k and Tiny Shakespeare loaders: the shared corpus, and downloads from a local HTTP
server on 127.0.0.1 serving copies of a few shared files (nothing leaves the machine)."""

from __future__ import annotations

import gzip
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import corpus_dir, data_root
from transformer.data import (
    DataError,
    load_multi30k,
    multi30k_dir,
    multi30k_files,
    tiny_shakespeare_path,
)


def gz_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.strip() for line in f]


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base_url, served_dir, requested_paths): a local static file server (downloads from it
    are allowed: conftest.py sets TRANSFORMER_OFFLINE=1 for every other test)."""
    monkeypatch.delenv("TRANSFORMER_OFFLINE", raising=False)
    served = tmp_path / "served"
    served.mkdir()
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            requested.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served, requested
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_load_shared_multi30k_matches_gzip_reader():
    root = corpus_dir("multi30k").parent
    corpus = load_multi30k("val", "en", "fr", data_dir=root, download_missing=False)
    assert corpus.src == gz_lines(root / "multi30k" / "val.en.gz")
    assert corpus.tgt == gz_lines(root / "multi30k" / "val.fr.gz")
    assert len(corpus) == corpus.counts.lines == 1014
    test = load_multi30k("test_2016_flickr", "cs", "de", data_dir=root, download_missing=False)
    assert len(test) == 1000


def test_transformer_data_env_is_used(monkeypatch):
    root = corpus_dir("multi30k").parent
    monkeypatch.setenv("TRANSFORMER_DATA", str(root))
    src, tgt = multi30k_files("val", "de", "en", download_missing=False)
    assert src == root / "multi30k" / "val.de.gz" and tgt == root / "multi30k" / "val.en.gz"
    assert multi30k_dir(root / "multi30k") == root / "multi30k"


def test_bad_arguments_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="unknown Multi30k split 'dev'"):
        multi30k_files("dev", "de", "en", data_dir=tmp_path)
    with pytest.raises(DataError, match="unknown Multi30k language 'es'"):
        multi30k_files("val", "es", "en", data_dir=tmp_path)
    with pytest.raises(DataError, match="both 'de'"):
        multi30k_files("val", "de", "de", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"multi30k/val\.de\.gz not found"):
        multi30k_files("val", "de", "en", data_dir=tmp_path, download_missing=False)


def test_download_from_local_server(tmp_path, server):
    shared = corpus_dir("multi30k")
    base_url, served, requested = server
    for name in ("val.de.gz", "val.en.gz"):
        shutil.copy(shared / name, served / name)
    root = tmp_path / "root"
    corpus = load_multi30k("val", "de", "en", data_dir=root, base_url=base_url, progress=False)
    assert sorted(requested) == ["/val.de.gz", "/val.en.gz"]
    for name in ("val.de.gz", "val.en.gz"):
        assert (root / "multi30k" / name).read_bytes() == (shared / name).read_bytes()
    assert corpus.src == gz_lines(shared / "val.de.gz") and len(corpus) == 1014
    assert not [p for p in (root / "multi30k").iterdir() if p.name.startswith(".")]
    load_multi30k("val", "de", "en", data_dir=root, base_url=base_url, progress=False)
    assert len(requested) == 2  # present files are not fetched again


def test_download_checksum_mismatch_and_http_error(tmp_path, server):
    base_url, served, _ = server
    (served / "val.de.gz").write_bytes(gzip.compress(b"not the real file\n"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"checksum mismatch for .*/val\.de\.gz"):
        multi30k_files("val", "de", "en", data_dir=root, base_url=base_url, progress=False)
    assert list((root / "multi30k").iterdir()) == []  # nothing half-written is left
    with pytest.raises(DataError, match=r"val\.fr\.gz: HTTP 404"):
        multi30k_files("val", "fr", "en", data_dir=root, base_url=base_url, progress=False)


def test_tiny_shakespeare_download(tmp_path, server):
    shared = corpus_dir("tinyshakespeare") / "input.txt.gz"
    base_url, served, _ = server
    (served / "input.txt").write_bytes(gzip.decompress(shared.read_bytes()))
    path = tiny_shakespeare_path(tmp_path, url=f"{base_url}/input.txt", progress=False)
    assert path == tmp_path / "tinyshakespeare" / "input.txt"
    assert path.read_bytes() == (served / "input.txt").read_bytes()
    assert tiny_shakespeare_path(data_root(), download_missing=False) == shared
    with pytest.raises(DataError, match="Tiny Shakespeare not found"):
        tiny_shakespeare_path(tmp_path / "empty", download_missing=False)


def test_offline_forbids_downloads_and_files_on_disk_are_rehashed(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFORMER_OFFLINE", "1")
    with pytest.raises(DataError, match=r"val\.de\.gz is missing and downloads are off"):
        multi30k_files("val", "de", "en", data_dir=tmp_path, progress=False)
    assert not (tmp_path / "multi30k").exists() or not list((tmp_path / "multi30k").iterdir())
    damaged = tmp_path / "multi30k"
    damaged.mkdir(exist_ok=True)
    shared = corpus_dir("multi30k")
    (damaged / "val.de.gz").write_bytes((shared / "val.de.gz").read_bytes()[:-10])
    shutil.copy(shared / "val.en.gz", damaged / "val.en.gz")
    with pytest.raises(DataError, match=r"val\.de\.gz: sha256 .* differs from the pinned"):
        multi30k_files("val", "de", "en", data_dir=tmp_path)
    shutil.copy(shared / "val.de.gz", damaged / "val.de.gz")
    assert multi30k_files("val", "de", "en", data_dir=tmp_path)[0] == damaged / "val.de.gz"
