"""The object store behind shard URLs, against the real S3 server of the local stack."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from shards import store as store_mod
from shards.store import (
    FileStore,
    ObjectNotFoundError,
    RangeNotSatisfiableError,
    S3Store,
    StoreError,
    open_store,
    split_url,
)


def _roundtrip(store) -> None:
    assert store.list() == []
    store.put_bytes("a/one.bin", b"hello world")
    two_sha = hashlib.sha256(b"x" * 1000).hexdigest()
    store.put_bytes("two.bin", b"x" * 1000, sha256=two_sha)
    assert store.exists("a/one.bin") and not store.exists("a/none.bin")
    assert store.get_bytes("a/one.bin") == b"hello world"
    assert store.size("two.bin") == 1000
    assert store.get_range("a/one.bin", 6, 11) == b"world"
    assert store.get_range("a/one.bin", 6, 100) == b"world"  # short object: what there is
    with store.open_read("a/one.bin") as f:
        assert f.read(5) == b"hello" and f.read() == b" world"
    assert store.list() == ["a/one.bin", "two.bin"]
    assert store.list("a/") == ["a/one.bin"]
    store.delete("a/one.bin")
    store.delete("a/one.bin")  # absent: not an error
    assert store.list() == ["two.bin"]
    with pytest.raises(ObjectNotFoundError, match="a/one.bin"):
        store.get_bytes("a/one.bin")
    with pytest.raises(ObjectNotFoundError, match="nothing.bin"):
        store.stat("nothing.bin")
    for bad in ("../escape", "/abs", "a/../b", ""):
        with pytest.raises(ValueError, match="invalid object key"):
            store.put_bytes(bad, b"")


def test_s3_store_roundtrip(s3_prefix):
    store = open_store(s3_prefix)
    assert isinstance(store, S3Store) and store.root_url == s3_prefix
    _roundtrip(store)
    assert store.url_for("x/y.tar") == f"{s3_prefix}/x/y.tar"
    assert store.stat("two.bin").sha256 == hashlib.sha256(b"x" * 1000).hexdigest()  # recorded as object metadata
    # The sha256 also goes up as the object's checksum, which the server verifies: bytes damaged
    # on the way (here: a wrong digest for them) are refused, and nothing is stored.
    with pytest.raises(StoreError, match=r"bad\.bin"):
        store.put_bytes("bad.bin", b"y" * 1000, sha256="ab" * 32)
    assert not store.exists("bad.bin")


def test_file_store_roundtrip(tmp_path):
    for url in (tmp_path.as_uri() + "/uri", str(tmp_path / "plain")):
        store = open_store(url)
        assert isinstance(store, FileStore)
        _roundtrip(store)
        assert store.stat("two.bin").sha256 == hashlib.sha256(b"x" * 1000).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    store = open_store(tmp_path / "moved")
    store.put_file("k/src.bin", src, move=True)
    assert not src.exists() and store.get_bytes("k/src.bin") == b"payload"
    assert oct((tmp_path / "moved/k/src.bin").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_s3_put_file_uses_multipart_for_big_objects(s3_prefix, stack, tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "MULTIPART_THRESHOLD", 5 * 2**20)
    monkeypatch.setattr(store_mod, "MULTIPART_CHUNK", 5 * 2**20)
    data = os.urandom(12 * 2**20)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    store = open_store(s3_prefix)
    store.put_file("big.bin", big, sha256=hashlib.sha256(data).hexdigest())
    bucket, _, prefix = s3_prefix[len("s3://"):].partition("/")
    head = stack.s3_client().head_object(Bucket=bucket, Key=f"{prefix}/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # a 3-part multipart upload
    assert store.get_bytes("big.bin") == data
    assert store.stat("big.bin").sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_range("big.bin", 7 * 2**20, 7 * 2**20 + 10) == data[7 * 2**20: 7 * 2**20 + 10]


def test_s3_range_beyond_end_is_a_named_error(s3_prefix):
    store = open_store(s3_prefix)
    store.put_bytes("short.bin", b"abc")
    with pytest.raises(RangeNotSatisfiableError, match="short.bin"):
        store.get_range("short.bin", 10, 20)


def test_s3_missing_bucket_is_named(stack):
    store = open_store("s3://no-such-bucket-vton/x")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-vton' does not exist"):
        store.get_bytes("manifest.json")
    # SeaweedFS would create the bucket on PUT (AWS refuses); the store refuses everywhere.
    with pytest.raises(StoreError, match="s3://no-such-bucket-vton/x/k.*does not exist"):
        store.put_bytes("k", b"1")
    assert "no-such-bucket-vton" not in [b["Name"] for b in stack.s3_client().list_buckets()["Buckets"]]


def test_s3_bad_credentials_are_named(s3_prefix, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StoreError, match="rejected the credentials") as err:
        open_store(s3_prefix).put_bytes("k", b"1")
    assert s3_prefix in str(err.value)


def test_s3_no_credentials_are_named(s3_prefix, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no S3 credentials.*AWS_ACCESS_KEY_ID"):
        open_store(s3_prefix).get_bytes("k")


def test_s3_unreachable_endpoint_is_named(monkeypatch):
    monkeypatch.setenv("VTON_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(StoreError, match=r"cannot reach the S3 endpoint http://127.0.0.1:9") as err:
        open_store("s3://vton/some/prefix").get_bytes("manifest.json")
    assert "s3://vton/some/prefix/manifest.json" in str(err.value)


def test_url_parsing(tmp_path):
    with pytest.raises(ValueError, match="unsupported URL scheme 'gs'"):
        open_store("gs://bucket/x")
    with pytest.raises(ValueError, match="at least 3 characters"):
        open_store("s3://ab/x")
    store, name = split_url("s3://vton/a/b/manifest.json")
    assert store.root_url == "s3://vton/a/b" and name == "manifest.json"
    store, name = split_url("s3://vton/manifest.json")
    assert store.root_url == "s3://vton" and name == "manifest.json"
    store, name = split_url((tmp_path / "m.json").as_uri())
    assert isinstance(store, FileStore) and store.root == tmp_path.resolve() and name == "m.json"


def test_webdataset_streams_s3_shards_through_boto3(s3_prefix):
    buf = io.BytesIO()
    with wds.TarWriter(buf, encoder=False) as tw:
        for i in range(3):
            tw.write({"__key__": f"s{i}", "txt": f"sample {i}".encode()})
    store = open_store(s3_prefix)
    store.put_bytes("shard-000000.tar", buf.getvalue())
    samples = list(wds.WebDataset(f"{s3_prefix}/shard-000000.tar", shardshuffle=False))
    assert [(s["__key__"], s["txt"]) for s in samples] == [(f"s{i}", f"sample {i}".encode()) for i in range(3)]
    # ...and writing through gopen("s3://...", "wb") lands a readable object.
    with wds.gopen(f"{s3_prefix}/written.tar", "wb") as f:
        with tarfile.open(fileobj=f, mode="w|") as tar:
            info = tarfile.TarInfo("a.txt")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    names = tarfile.open(fileobj=io.BytesIO(store.get_bytes("written.tar"))).getnames()
    assert names == ["a.txt"]


def test_local_path_has_no_scheme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("rel/dir")
    store.put_bytes("k", b"v")
    assert Path(tmp_path, "rel/dir/k").read_bytes() == b"v"
