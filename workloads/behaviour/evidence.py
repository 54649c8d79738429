"""Evidence frames: where person crops live (a folder or an S3-compatible bucket) and how keys are laid out.

Layout (the shape of Intel's loss-prevention frame bucket, with the store as the scene):

    {store}/{visitor}/{zone}/{visit}/frames/{ts_ms}.jpg     crops of one visit of a HIGH_VALUE zone
    {store}/alerts/{alert_id}/frames/{visit}-{ts_ms}.jpg     copies made when an alert fires (evidence)

`visit` is the event id of the ZONE_ENTER that opened the visit (the loss-prevention session's
`Visit.entry_event_id`), so the rules, the camera and the watcher name a visit the same way. The
metadata (which frames exist, their keypoints) is in Redis (`workloads.behaviour.visits`); the
store only holds bytes, so either backend can be swapped without touching the index.

Example:
    >>> visit_prefix("S1", "CAM-1", "PHONES", "e1")
    'S1/CAM-1/PHONES/e1/frames/'
    >>> frame_key("S1", "CAM-1", "PHONES", "e1", 1700000000123)
    'S1/CAM-1/PHONES/e1/frames/1700000000123.jpg'
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from workloads.behaviour.settings import EvidenceConfig

_SEGMENT = re.compile(r"^[A-Za-z0-9_.:@-]+$")


def _seg(value: str) -> str:
    """One path segment of a key: refuses separators and `..` (ids come from configs and events)."""
    if not _SEGMENT.match(value) or value in (".", ".."):
        raise ValueError(f"{value!r} cannot be part of an evidence key")
    return value


def visit_prefix(store_id: str, visitor_id: str, zone_id: str, visit_id: str) -> str:
    return f"{_seg(store_id)}/{_seg(visitor_id)}/{_seg(zone_id)}/{_seg(visit_id)}/frames/"


def frame_key(store_id: str, visitor_id: str, zone_id: str, visit_id: str, ts_ms: int) -> str:
    return f"{visit_prefix(store_id, visitor_id, zone_id, visit_id)}{int(ts_ms)}.jpg"


def alert_prefix(store_id: str, alert_id: str) -> str:
    return f"{_seg(store_id)}/alerts/{_seg(alert_id)}/frames/"


class EvidenceStore(Protocol):
    """Bytes by key. Writes are whole-object and idempotent (a replayed frame overwrites itself)."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def copy(self, src: str, dst: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...


class FilesystemStore:
    """A folder; writes go through a temporary file and a rename, so readers never see half a JPEG."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"key {key!r} escapes the evidence root")
        return p

    def put(self, key: str, data: bytes) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def copy(self, src: str, dst: str) -> None:
        self.put(dst, self.get(src))

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix.rstrip("/") else self.root
        if not base.is_dir():
            return []
        root = self.root.resolve()
        return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for k in keys:
            self._path(k).unlink(missing_ok=True)
        # Remove emptied folders up to (not including) the root.
        d = self._path(prefix)
        root = self.root.resolve()
        while d != root and d.is_dir():
            try:
                for sub in sorted(d.rglob("*"), reverse=True):
                    if sub.is_dir():
                        sub.rmdir()
                d.rmdir()
            except OSError:
                break
            d = d.parent
        return len(keys)


class S3Store:
    """An S3-compatible bucket (MinIO, SeaweedFS, Ceph, AWS) through boto3; credentials from env vars."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, **client_kwargs: Any) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", **client_kwargs)
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def put(self, key: str, data: bytes) -> None:
        ctype = "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=ctype)

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None

    def copy(self, src: str, dst: str) -> None:
        self.client.copy_object(Bucket=self.bucket, Key=self.prefix + dst,
                                CopySource={"Bucket": self.bucket, "Key": self.prefix + src})

    def list(self, prefix: str) -> list[str]:
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=self.prefix + prefix):
            out += [o["Key"][len(self.prefix):] for o in page.get("Contents", [])]
        return sorted(out)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": self.prefix + k} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
        return len(keys)


def open_store(cfg: EvidenceConfig) -> EvidenceStore:
    """The configured backend (the S3 bucket must exist; it is not created here)."""
    if cfg.backend == "filesystem":
        return FilesystemStore(cfg.root_path())
    s3 = cfg.s3
    return S3Store(
        s3.bucket, s3.prefix, endpoint_url=s3.endpoint_url, region_name=s3.region,
        aws_access_key_id=os.environ.get(s3.access_key_env), aws_secret_access_key=os.environ.get(s3.secret_key_env),
    )


def crop_person(
    image: npt.NDArray[np.uint8], box: npt.ArrayLike, margin: float, max_side: int, quality: int
) -> tuple[bytes, tuple[int, int, int, int]]:
    """JPEG of the person box plus `margin` on each side, clipped to the frame, longer side <= max_side.

    Returns the JPEG bytes and the crop rectangle `x1, y1, x2, y2` in frame pixels (keypoints stay in
    frame pixels; the rectangle maps them onto the crop).
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    r = (max(0, int(x1 - mx)), max(0, int(y1 - my)), min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my))))
    if r[2] <= r[0] or r[3] <= r[1]:
        raise ValueError(f"empty crop for box {box} in a {w}x{h} frame")
    crop = image[r[1] : r[3], r[0] : r[2]]
    longer = max(crop.shape[:2])
    if longer > max_side:
        f = max_side / longer
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes(), r
