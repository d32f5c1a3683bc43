"""The local S3 server (the `s3` part): conditional writes, atomic writes, listings, errors.

These are the properties tansu's S3 engine relies on and npm s3rver 3.7.1 lacked (it ignored
If-Match / If-None-Match on PUT and truncated an object before the new body arrived).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import itertools
import socket
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localstack.config import Ports, StackConfig
from localstack.parts import s3 as s3_part
from localstack.s3_server.__main__ import main
from localstack.s3_server.settings import S3ServerSettings
from localstack.s3_server.store import FileStore, InvalidKey, PreconditionFailed, adopt_s3rver_layout
from localstack.supervisor import Supervisor

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The `s3` part as users run it, on a free port; yields (base url, supervisor, config)."""
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("s3"), ports=Ports.free())
    sup = Supervisor(cfg)
    with sup:
        sup.start_all(s3_part.components(cfg))
        yield f"http://{cfg.host}:{cfg.ports.s3}", sup, cfg


@pytest.fixture
def http(server):
    base, _sup, _cfg = server
    with httpx.Client(base_url=base, timeout=10) as c:
        yield c


def _md5(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def _code(r: httpx.Response) -> str:
    return ET.fromstring(r.content).findtext("Code") or ""


def test_put_get_head_delete_round_trip(http, server):
    r = http.put("/tansu/a/b/c.json", content=b'{"high":1}')
    assert r.status_code == 200 and r.headers["etag"] == _md5(b'{"high":1}')
    r = http.get("/tansu/a/b/c.json")
    assert (r.status_code, r.content, r.headers["etag"]) == (200, b'{"high":1}', _md5(b'{"high":1}'))
    assert r.headers["last-modified"].endswith("GMT")
    h = http.head("/tansu/a/b/c.json")
    assert (h.status_code, h.headers["content-length"], h.headers["etag"]) == (200, "10", _md5(b'{"high":1}'))
    # Plain files on disk: the data folder stays inspectable.
    _base, _sup, cfg = server
    assert (cfg.path("s3") / "tansu" / "a" / "b" / "c.json").read_bytes() == b'{"high":1}'
    assert http.delete("/tansu/a/b/c.json").status_code == 204
    assert http.delete("/tansu/a/b/c.json").status_code == 204  # deleting nothing is fine, as in S3
    r = http.get("/tansu/a/b/c.json")
    assert (r.status_code, _code(r)) == (404, "NoSuchKey")
    assert http.head("/tansu/a/b/c.json").status_code == 404
    assert not (cfg.path("s3") / "tansu" / "a").exists(), "empty folders are removed with the last object"


def test_if_none_match_star_never_overwrites(http):
    """The write tansu uses for a new watermark or batch: s3rver let it replace stored records."""
    assert http.put("/tansu/create/w.json", content=b"first", headers={"If-None-Match": "*"}).status_code == 200
    r = http.put("/tansu/create/w.json", content=b"second", headers={"If-None-Match": "*"})
    assert (r.status_code, _code(r)) == (412, "PreconditionFailed")
    assert http.get("/tansu/create/w.json").content == b"first"


def test_if_match_only_updates_the_version_it_read(http):
    etag1 = http.put("/tansu/cas/w.json", content=b"v1").headers["etag"]
    etag2 = http.put("/tansu/cas/w.json", content=b"v2", headers={"If-Match": etag1}).headers["etag"]
    r = http.put("/tansu/cas/w.json", content=b"stale", headers={"If-Match": etag1})
    assert (r.status_code, _code(r)) == (412, "PreconditionFailed")
    assert http.get("/tansu/cas/w.json").content == b"v2"
    assert http.put("/tansu/cas/w.json", content=b"v3", headers={"If-Match": etag2}).status_code == 200
    r = http.put("/tansu/cas/missing.json", content=b"x", headers={"If-Match": etag2})
    assert r.status_code == 412, "If-Match on a missing object must fail"
    assert http.get("/tansu/cas/missing.json").status_code == 404


def test_concurrent_conditional_updates_admit_exactly_one(server):
    """Many writers racing with the same If-Match: one wins, the others get 412 (an optimistic lock)."""
    base, _sup, _cfg = server
    etag = httpx.put(f"{base}/tansu/race/w.json", content=b"0").headers["etag"]

    def attempt(i: int) -> int:
        return httpx.put(f"{base}/tansu/race/w.json", content=b"%d" % i, headers={"If-Match": etag},
                         timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(attempt, range(1, 33)))
    assert sorted(set(codes)) == [200, 412] and codes.count(200) == 1, codes
    winner = codes.index(200) + 1
    assert httpx.get(f"{base}/tansu/race/w.json").content == b"%d" % winner


def test_aborted_upload_leaves_the_object_unchanged(http, server):
    """A client killed mid-PUT (tansu SIGKILLed) must not leave a truncated object: s3rver left it empty."""
    base, _sup, cfg = server
    http.put("/tansu/abort/watermark.json", content=b'{"high":42}')
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"PUT /tansu/abort/watermark.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"{" * 10)
        time.sleep(0.3)  # the server is now reading the body
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any((cfg.path("s3") / ".uploads").iterdir()):
        time.sleep(0.05)
    assert http.get("/tansu/abort/watermark.json").content == b'{"high":42}'
    assert not any((cfg.path("s3") / ".uploads").iterdir()), "no temporary file left behind"


def test_content_md5_is_checked(http):
    good = base64.b64encode(hashlib.md5(b"body", usedforsecurity=False).digest()).decode()
    assert http.put("/tansu/md5/ok", content=b"body", headers={"Content-MD5": good}).status_code == 200
    r = http.put("/tansu/md5/bad", content=b"other", headers={"Content-MD5": good})
    assert (r.status_code, _code(r)) == (400, "BadDigest")
    r = http.put("/tansu/md5/bad", content=b"other", headers={"Content-MD5": "!!"})
    assert (r.status_code, _code(r)) == (400, "InvalidDigest")
    assert http.get("/tansu/md5/bad").status_code == 404


def test_conditional_and_range_reads(http):
    etag = http.put("/tansu/read/obj", content=b"0123456789").headers["etag"]
    assert http.get("/tansu/read/obj", headers={"If-None-Match": etag}).status_code == 304
    assert http.get("/tansu/read/obj", headers={"If-None-Match": '"other"'}).status_code == 200
    assert http.get("/tansu/read/obj", headers={"If-Match": '"other"'}).status_code == 412
    r = http.get("/tansu/read/obj", headers={"Range": "bytes=2-4"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"234", "bytes 2-4/10")
    assert http.get("/tansu/read/obj", headers={"Range": "bytes=7-"}).content == b"789"
    assert http.get("/tansu/read/obj", headers={"Range": "bytes=-3"}).content == b"789"
    r = http.get("/tansu/read/obj", headers={"Range": "bytes=20-30"})
    assert (r.status_code, _code(r), r.headers["content-range"]) == (416, "InvalidRange", "bytes */10")


def _list(http: httpx.Client, **params: str) -> ET.Element:
    r = http.get("/tansu", params={"list-type": "2", **params})
    assert r.status_code == 200, r.text
    return ET.fromstring(r.content)


def test_list_objects_v2_prefix_delimiter_and_pages(http):
    keys = [f"ls/p/{p:010d}/records/{o:020d}.batch" for p in range(2) for o in (0, 5, 12)] + ["ls/p/x.json"]
    for k in keys:
        http.put(f"/tansu/{k}", content=k.encode())
    doc = _list(http, prefix="ls/p/0000000000/records/")
    got = [c.findtext(f"{NS}Key") for c in doc.iter(f"{NS}Contents")]
    assert got == [f"ls/p/0000000000/records/{o:020d}.batch" for o in (0, 5, 12)]
    first = next(doc.iter(f"{NS}Contents"))
    assert first.findtext(f"{NS}ETag") == _md5(got[0].encode())
    assert first.findtext(f"{NS}Size") == str(len(got[0]))
    assert first.findtext(f"{NS}LastModified", "").endswith("Z")
    # A prefix that is not a folder boundary still matches.
    assert [c.findtext(f"{NS}Key") for c in _list(http, prefix="ls/p/x").iter(f"{NS}Contents")] == ["ls/p/x.json"]
    # Delimiter: folders become common prefixes.
    doc = _list(http, prefix="ls/p/", delimiter="/")
    assert [p.findtext(f"{NS}Prefix") for p in doc.iter(f"{NS}CommonPrefixes")] == [
        "ls/p/0000000000/", "ls/p/0000000001/"]
    assert [c.findtext(f"{NS}Key") for c in doc.iter(f"{NS}Contents")] == ["ls/p/x.json"]
    # Pages of two, in key order, with continuation tokens; the union is every key exactly once.
    seen: list[str] = []
    token = None
    for _ in range(10):
        params = {"prefix": "ls/", "max-keys": "2", **({"continuation-token": token} if token else {})}
        doc = _list(http, **params)
        seen += [c.findtext(f"{NS}Key") or "" for c in doc.iter(f"{NS}Contents")]
        if doc.findtext(f"{NS}IsTruncated") == "false":
            break
        token = doc.findtext(f"{NS}NextContinuationToken")
    assert seen == sorted(keys)
    assert [c.findtext(f"{NS}Key") for c in _list(http, prefix="ls/", **{"start-after": keys[-2]}).iter(
        f"{NS}Contents")] == sorted(keys)[sorted(keys).index(keys[-2]) + 1:]
    r = http.get("/tansu", params={"list-type": "2", "max-keys": "many"})
    assert (r.status_code, _code(r)) == (400, "InvalidArgument")


def test_delete_objects(http):
    for k in ("del/a", "del/b"):
        http.put(f"/tansu/{k}", content=b"x")
    body = (f'<Delete xmlns="{NS[1:-1]}"><Object><Key>del/a</Key></Object><Object><Key>del/b</Key></Object>'
            "<Object><Key>del/never</Key></Object></Delete>")
    r = http.post("/tansu", params={"delete": ""}, content=body.encode())
    assert r.status_code == 200
    deleted = [d.findtext(f"{NS}Key") for d in ET.fromstring(r.content).iter(f"{NS}Deleted")]
    assert deleted == ["del/a", "del/b", "del/never"]
    assert http.get("/tansu/del/a").status_code == 404
    r = http.post("/tansu", params={"delete": ""}, content=b"<not xml")
    assert (r.status_code, _code(r)) == (400, "MalformedXML")


def test_bad_requests_get_clear_errors(http):
    r = http.put("/tansu/a/%2E%2E/%2E%2E/etc", content=b"x")  # '..' escaped so the client keeps it
    assert (r.status_code, _code(r)) == (400, "InvalidArgument")
    r = http.put("/tansu/a//b", content=b"x")
    assert (r.status_code, _code(r)) == (400, "InvalidArgument")
    r = http.get("/nobucket/k")
    assert (r.status_code, _code(r)) == (404, "NoSuchBucket")
    assert http.head("/nobucket").status_code == 404
    r = http.put("/tansu/copy", headers={"x-amz-copy-source": "/tansu/x"})
    assert (r.status_code, _code(r)) == (501, "NotImplemented")
    r = http.get("/tansu", params={"uploads": ""})
    assert (r.status_code, _code(r)) == (501, "NotImplemented")
    http.put("/tansu/clash/leaf", content=b"x")
    r = http.put("/tansu/clash/leaf/under", content=b"y")
    assert (r.status_code, _code(r)) == (400, "InvalidArgument")
    r = http.put("/tansu/clash", content=b"y")
    assert (r.status_code, _code(r)) == (400, "InvalidArgument")
    assert http.get("/tansu/clash/leaf").content == b"x"


def test_buckets(http):
    assert http.head("/tansu").status_code == 200
    assert http.put("/other-bucket").status_code == 200
    names = [b.findtext(f"{NS}Name") for b in ET.fromstring(http.get("/").content).iter(f"{NS}Bucket")]
    assert {"tansu", "other-bucket"} <= set(names)
    r = http.put("/.bad")
    assert (r.status_code, _code(r)) == (400, "InvalidArgument")


def test_objects_and_etags_survive_a_restart(server):
    """Stop and start the server: the same objects with the same ETags (so If-Match still works)."""
    base, sup, _cfg = server
    etag = httpx.put(f"{base}/tansu/restart/w.json", content=b"kept").headers["etag"]
    sup.restart("s3", kill=True)
    r = httpx.get(f"{base}/tansu/restart/w.json")
    assert (r.content, r.headers["etag"]) == (b"kept", etag)
    assert httpx.put(f"{base}/tansu/restart/w.json", content=b"next", headers={"If-Match": etag}).status_code == 200


def test_store_refuses_bad_keys_and_cleans_stale_uploads(tmp_path: Path):
    (tmp_path / ".uploads").mkdir()
    (tmp_path / ".uploads" / "put-stale").write_bytes(b"half")
    store = FileStore(tmp_path, ["b"])
    assert not any((tmp_path / ".uploads").iterdir())
    for key in ("", "a/./b", "a/../b", "/a"):
        with pytest.raises(InvalidKey):
            store.put("b", key, b"x")
    store.put("b", "k", b"x")
    with pytest.raises(PreconditionFailed):
        store.put("b", "k", b"y", if_none_match="*")
    assert [i.key for i in store.list("b")] == ["k"]


def test_adopts_an_s3rver_data_folder(tmp_path: Path):
    obj = tmp_path / "tansu" / "clusters" / "c" / "meta.json"
    obj.parent.mkdir(parents=True)
    Path(str(obj) + "._S3rver_object").write_bytes(b'{"x":1}')
    Path(str(obj) + "._S3rver_metadata.json").write_text("{}")
    Path(str(obj) + "._S3rver_object.md5").write_text("abc")
    assert adopt_s3rver_layout(tmp_path) == 1
    assert adopt_s3rver_layout(tmp_path) == 0
    store = FileStore(tmp_path, ["tansu"])
    assert [i.key for i in store.list("tansu")] == ["clusters/c/meta.json"]
    assert store.get("tansu", "clusters/c/meta.json")[1] == b'{"x":1}'


@pytest.mark.parametrize(("env", "problem"), [
    ({"S3_SERVER_DIR": "/tmp/x", "S3_SERVER_LISTEN": "9000"}, "host:port"),
    ({"S3_SERVER_DIR": "/tmp/x", "S3_SERVER_LISTEN": "127.0.0.1:99999"}, "host:port"),
    ({"S3_SERVER_LISTEN": "127.0.0.1:9000"}, "S3_SERVER_DIR"),
])
def test_settings_reject_bad_values(env, problem, capsys):
    with pytest.raises(ValueError, match=problem):
        S3ServerSettings.from_env(env)
    assert main(env) == 2
    assert problem in capsys.readouterr().err


def test_settings_from_env(tmp_path: Path):
    s = S3ServerSettings.from_env({"S3_SERVER_LISTEN": "127.0.0.1:19300", "S3_SERVER_DIR": str(tmp_path),
                                   "S3_SERVER_BUCKETS": "tansu, b2,", "S3_SERVER_ACCESS_LOG": "1"})
    assert (s.host, s.port, s.directory, s.buckets, s.access_log) == ("127.0.0.1", 19300, tmp_path, ("tansu", "b2"),
                                                                       True)


# --- the in-memory index (issue 17: a listing's cost must not grow with the number of objects) ----


_KEY = st.lists(st.sampled_from(["a", "b", "ab", "é", "z9", "0"]), min_size=1, max_size=3).map("/".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.booleans(), _KEY), max_size=40),
       prefix=st.sampled_from(["", "a", "a/", "ab", "b/a", "é", "zz"]),
       start_after=st.sampled_from(["", "a", "a/b", "b", "é/a", "\U0010ffff"]))
def test_listing_matches_a_sorted_model_after_any_puts_and_deletes(tmp_path_factory, ops, prefix, start_after):
    """Against a dict model: same keys, UTF-8 byte order, prefix and start-after honoured, deletes gone."""
    store = FileStore(tmp_path_factory.mktemp("idx"), ["b"])
    model: dict[str, bytes] = {}
    for put, key in ops:
        if put:
            with contextlib.suppress(InvalidKey):  # a file/folder clash is refused, as on disk
                store.put("b", key, key.encode())
                model[key] = key.encode()
        else:
            store.delete("b", key)
            model.pop(key, None)
    want = sorted((k for k in model if k.startswith(prefix) and k.encode() > start_after.encode()),
                  key=lambda k: k.encode())
    assert [i.key for i in store.list("b", prefix, start_after)] == want
    # A restart rebuilds the same index from the folder.
    again = FileStore(store.root, ["b"])
    assert [(i.key, i.etag) for i in again.list("b", prefix, start_after)] == [
        (i.key, i.etag) for i in store.list("b", prefix, start_after)]


def test_a_listing_page_visits_the_page_not_the_bucket(tmp_path: Path):
    """20,000 objects under one prefix (a partition's records/): a page of 1,000 visits about 1,000 keys."""
    root = tmp_path / "data"
    folder = root / "tansu" / "t" / "records"
    folder.mkdir(parents=True)
    for o in range(20_000):
        (folder / f"{o:020d}.batch").write_bytes(b"x")
    store = FileStore(root, ["tansu"])
    assert store.stats("tansu")["objects"] == 20_000
    page = list(itertools.islice(store.list("tansu", "t/records/", f"t/records/{15_000:020d}.batch"), 1000))
    assert page[0].key == f"t/records/{15_001:020d}.batch" and len(page) == 1000
    assert store.stats("tansu")["list_scanned_max"] <= 1001
    store.delete("tansu", page[0].key)
    assert store.stats("tansu")["objects"] == 19_999
    assert next(store.list("tansu", "t/records/", f"t/records/{15_000:020d}.batch")).key == page[1].key
