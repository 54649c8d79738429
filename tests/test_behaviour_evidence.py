"""Evidence stores (a folder; an S3-compatible server), key layout, person crops, the answer schema."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from workloads.behaviour.evidence import (
    EvidenceStore,
    FilesystemStore,
    S3Store,
    alert_prefix,
    crop_person,
    frame_key,
    visit_prefix,
)
from workloads.behaviour.verdict import Status, answer_schema, build_prompt, chat_messages, parse_answer


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[EvidenceStore]:
    if request.param == "filesystem":
        yield FilesystemStore(tmp_path / "evidence")
        return
    # A real S3-compatible HTTP server (moto's), spoken to through boto3 like MinIO would be.
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket="behavioral-frames")
    yield S3Store("behavioral-frames", prefix="chain-a", client=client)
    server.stop()


def test_store_roundtrip(store: EvidenceStore) -> None:
    k1 = frame_key("S1", "CAM-1-7", "PHONES", "e1", 1000)
    k2 = frame_key("S1", "CAM-1-7", "PHONES", "e1", 1500)
    store.put(k1, b"a")
    store.put(k2, b"b")
    store.put(k1, b"a2")  # a replayed frame overwrites itself
    assert store.get(k1) == b"a2"
    assert store.list(visit_prefix("S1", "CAM-1-7", "PHONES", "e1")) == [k1, k2]
    dst = alert_prefix("S1", "al-1") + "e1-1000.jpg"
    store.copy(k1, dst)
    assert store.get(dst) == b"a2"
    assert store.delete_prefix(visit_prefix("S1", "CAM-1-7", "PHONES", "e1")) == 2
    assert store.list("S1/CAM-1-7/") == []
    assert store.list("S1/alerts/") == [dst]  # evidence outlives the visit
    with pytest.raises(KeyError):
        store.get(k1)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "."])
def test_keys_refuse_path_tricks(bad: str) -> None:
    with pytest.raises(ValueError):
        frame_key("S1", bad, "Z", "v", 1)


@pytest.mark.parametrize(
    ("box", "max_side", "expected_rect", "expected_shape"),
    [
        ((100, 100, 140, 200), 448, (94, 85, 146, 215), (130, 52)),  # 15 % margin each side
        ((0, 0, 40, 100), 448, (0, 0, 46, 115), (115, 46)),  # clipped at the frame's corner
        ((100, 50, 300, 550), 128, (70, 0, 330, 576), (128, 58)),  # scaled down to 128 on the longer side
    ],
)
def test_crop_person(box: tuple, max_side: int, expected_rect: tuple, expected_shape: tuple) -> None:
    frame = np.full((576, 768, 3), 127, np.uint8)
    jpeg, rect = crop_person(frame, box, 0.15, max_side, 85)
    assert rect == expected_rect
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == expected_shape


@pytest.mark.parametrize(
    ("text", "status", "confidence"),
    [
        ('{"status":"suspicious","confidence":0.9,"reason":"bag"}', "suspicious", 0.9),
        ('{"status":"no_match","confidence":0,"reason":""}', "no_match", 0.0),
        ('{"status":"suspicious","confidence":1.5,"reason":"x"}', "no_enough_data", 0.0),  # out of range
        ('{"status":"maybe","confidence":0.5,"reason":"x"}', "no_enough_data", 0.0),
        ('{"status":"no_match","confid', "no_enough_data", 0.0),  # token budget ran out
    ],
)
def test_parse_answer(text: str, status: str, confidence: float) -> None:
    v = parse_answer(text)
    assert (v.status, v.confidence) == (status, confidence)


def test_schema_and_prompt() -> None:
    schema = answer_schema(80)
    assert schema["properties"]["status"]["enum"] == [s.value for s in Status]
    assert schema["properties"]["reason"]["maxLength"] == 80
    text = build_prompt(4, "PHONES", ["hand_to_waist (left)"])
    assert "last 4 frames" in text and "hand_to_waist (left)" in text
    msgs = chat_messages(2, text)
    assert [c["type"] for c in msgs[0]["content"]] == ["image", "image", "text"]
