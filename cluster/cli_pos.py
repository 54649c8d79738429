"""`storefleet pos`: import point-of-sale transactions from a CSV file into store analytics.

The CSV needs a header with `transaction_id` and `timestamp`; `amount` and `items` are optional.
Rows go to `POST /stores/{id}/pos/transactions` in batches of up to 500, so the import uses the same
validation, idempotency and matching as any POS feed: re-running an import is safe (rows already
stored come back as duplicates). Bad rows are reported with their line number and skipped.

Example:
    storefleet pos import sales.csv --store STORE_BLR_001 --api http://127.0.0.1:8000 --assume-tz Asia/Kolkata
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from workloads.analytics.pos import Transaction

app = typer.Typer(help="Point-of-sale data for store analytics (conversion).", no_args_is_help=True)
console = Console(stderr=True)

COLUMNS = ("transaction_id", "timestamp", "amount", "items")
REQUIRED = ("transaction_id", "timestamp")
MAX_BATCH = 500


class PosImportError(RuntimeError):
    """The import cannot go on (bad file header, refused by the API); the message says why."""


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    matched: int = 0
    errors: list[str] = field(default_factory=list)  #: "line N: field: message"

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected, "matched": self.matched, "errors": self.errors[:20]}


def _row_errors(line: int, err: ValidationError) -> list[str]:
    return [f"line {line}: {'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in err.errors()]


def read_rows(path: Path, assume_tz: ZoneInfo | None = None) -> Iterator[tuple[int, Transaction | list[str]]]:
    """(line number, transaction or its errors) for every data row of the CSV."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        if missing or unknown:
            raise PosImportError(f"{path}: header must name {', '.join(REQUIRED)} (optional: amount, items); "
                               f"missing {missing or '-'}, unknown {unknown or '-'}")
        for row in reader:
            line = reader.line_num
            data: dict[str, Any] = {k: v for k, v in row.items() if k in COLUMNS and v not in (None, "")}
            if None in row:
                yield line, [f"line {line}: more fields than the header has"]
                continue
            ts = data.get("timestamp")
            if assume_tz is not None and isinstance(ts, str):
                try:
                    parsed = datetime.fromisoformat(ts)
                    if parsed.tzinfo is None:
                        data["timestamp"] = parsed.replace(tzinfo=assume_tz).isoformat()
                except ValueError:
                    pass  # the model reports it
            try:
                yield line, Transaction.model_validate(data)
            except ValidationError as e:
                yield line, _row_errors(line, e)


def _post(client: httpx.Client, store_id: str, batch: list[Transaction], retries: int = 5) -> dict[str, Any]:
    payload = {"transactions": [t.model_dump(mode="json") for t in batch]}
    for attempt in range(retries + 1):
        try:
            res = client.post(f"/stores/{store_id}/pos/transactions", json=payload)
        except httpx.TransportError as e:
            if attempt == retries:
                raise PosImportError(f"cannot reach the API: {e}") from None
        else:
            if res.status_code == 200:
                return res.json()
            if res.status_code not in (502, 503, 504) or attempt == retries:
                detail = res.json().get("detail") if "json" in res.headers.get("content-type", "") else res.text
                raise PosImportError(f"the API refused the batch ({res.status_code}): {detail}")
        time.sleep(min(5.0, 0.2 * 2**attempt))  # writes are idempotent: retrying is safe
    raise AssertionError("unreachable")


def import_csv(
    path: Path, store_id: str, client: httpx.Client, batch_size: int = MAX_BATCH,
    assume_tz: ZoneInfo | None = None, on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Send the file's transactions to the API in batches; `on_progress(rows)` after each batch."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise PosImportError(f"batch size must be 1..{MAX_BATCH}")
    summary = ImportSummary()
    batch: list[Transaction] = []
    lines: list[int] = []

    def flush() -> None:
        if not batch:
            return
        reply = _post(client, store_id, batch)
        summary.accepted += reply["accepted"]
        summary.duplicates += reply["duplicates"]
        summary.rejected += reply["rejected"]
        summary.matched += reply["matched"]
        for r in reply["results"]:
            for e in r["errors"]:
                summary.errors.append(f"line {lines[r['index']]}: {e['field']}: {e['message']}")
        if on_progress:
            on_progress(len(batch))
        batch.clear()
        lines.clear()

    for line, item in read_rows(path, assume_tz):
        summary.rows += 1
        if isinstance(item, list):
            summary.rejected += 1
            summary.errors += item
            if on_progress:
                on_progress(1)
            continue
        batch.append(item)
        lines.append(line)
        if len(batch) >= batch_size:
            flush()
    flush()
    return summary


def _count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV with transaction_id, timestamp[, amount, items].",
                                         exists=True, dir_okay=False, readable=True)],
    store: Annotated[str, typer.Option("--store", "-s", help="Store the transactions belong to.")],
    api: Annotated[str, typer.Option(help="Base URL of the StoreFleet API.")] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="STOREFLEET_API_KEY",
                                                help="API key (hq, or a store key of this store).")] = None,
    assume_tz: Annotated[str | None, typer.Option(help="Time zone of timestamps written without one, "
                                                  "e.g. Asia/Kolkata; without it they are rejected.")] = None,
    batch: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Transactions per request.")] = MAX_BATCH,
) -> None:
    """Import a POS CSV export; prints a JSON summary. Exit code 1 when some rows were rejected."""
    import json

    try:
        tz = ZoneInfo(assume_tz) if assume_tz else None
    except (ZoneInfoNotFoundError, ValueError):
        console.print(f"[red]unknown time zone {assume_tz!r}[/red]")
        raise typer.Exit(2) from None
    headers = {"X-API-Key": api_key} if api_key else {}
    total = _count_rows(file)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with httpx.Client(base_url=api, headers=headers, timeout=60) as client, \
                Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"POS -> {store}", total=total)
            summary = import_csv(file, store, client, batch, tz, lambda n: progress.advance(task, n))
    except PosImportError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None
    print(json.dumps(summary.as_dict(), indent=2))
    if summary.rejected:
        raise typer.Exit(1)
