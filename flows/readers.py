"""Reading exports as they arrive: CSV in UTF-8, UTF-8 with BOM, UTF-16 or GB18030/GBK; XLSX; Parquet.

Every cell is read as text (an ID or phone must never pass through a float), headers are mapped to the
contract from English or Chinese spellings, and each row keeps the line number a person sees when
opening the file. A problem with the file as a whole raises InputError, naming file and column.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import polars as pl

from transforms.contract import Contract, fold_header
from transforms.parsing import LINE


class InputError(Exception):
    """A file that cannot be used at all; the message says which file, which column, what was expected."""

    def __init__(self, path: Path | str, message: str, *, column: str | None = None):
        self.path = str(path)
        self.column = column
        where = f"{self.path}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes: how a dropped file is known again, whatever its name."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class RawTable:
    path: str
    frame: pl.DataFrame  # String columns named as in the contract, plus LINE
    encoding: str
    ignored_columns: list[str] = field(default_factory=list)
    rows: int = -1  # rows read; kept when the frame is let go once parsed

    def __post_init__(self) -> None:
        if self.rows < 0:
            self.rows = self.frame.height


_UTF8_SLICE = 1 << 24


def _utf8_error(data: bytes, start: int = 0) -> int | None:
    """The byte offset of the first sequence that is not UTF-8, or None. Checked a slice at a time: decoding
    a city's export into one Python string held twice its size again while it was read."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for at in range(start, len(view), _UTF8_SLICE):
        pending = len(decoder.getstate()[0])  # bytes of a character cut at the last slice's end
        try:
            decoder.decode(view[at:at + _UTF8_SLICE], final=at + _UTF8_SLICE >= len(view))
        except UnicodeDecodeError as exc:
            return at - pending + exc.start
    return None


def decode_bytes(path: Path, data: bytes) -> tuple[bytes, str]:
    """Returns (the text as UTF-8 bytes, the encoding it came in). GB18030 is a superset of GBK and GB2312.
    A UTF-8 file (BOM or not) is handed on as it is: the CSV reader skips the BOM."""
    if data.startswith(b"\xef\xbb\xbf"):
        bad = _utf8_error(data, 3)
        if bad is not None:
            raise InputError(path, f"marked as UTF-8 but byte {bad} is not: truncated or mixed "
                             "encodings (save the file again as UTF-8)")
        return data, "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8"), "utf-16"
        except UnicodeDecodeError as exc:
            raise InputError(path, f"truncated or corrupt UTF-16 text (byte {exc.start})") from exc
    if _utf8_error(data) is None:
        return data, "utf-8"
    try:
        return data.decode("gb18030").encode("utf-8"), "gb18030"
    except UnicodeDecodeError:
        raise InputError(path, "unknown text encoding: expected UTF-8 (with or without BOM), UTF-16 or "
                         "GB18030/GBK") from None


def _first_line(payload: bytes) -> str:
    head = bytes(memoryview(payload)[:1 << 20]).removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    return head.split(b"\n", 1)[0].decode("utf-8", errors="ignore")


def _csv_table(path: Path) -> tuple[list[str], pl.DataFrame, str]:
    """Header and a frame of String columns col_0..col_n with LINE; lines as a spreadsheet shows them."""
    data = path.read_bytes()
    if not data or data.isspace():  # (strip() would copy the whole file)
        raise InputError(path, "the file is empty")
    payload, encoding = decode_bytes(path, data)
    del data
    if b"\x00" in payload:  # in UTF-8 a zero byte is only ever the NUL character
        raise InputError(path, "the file contains NUL bytes: it is not a text export (binary or truncated file?)")
    first = _first_line(payload)
    delimiter = max([",", "\t", ";", "|"], key=first.count)
    try:
        grid = pl.read_csv(
            io.BytesIO(payload), has_header=False, infer_schema=False, separator=delimiter, raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        # Ragged rows and stray quotes: the standard library reader is slower but forgiving.
        text = payload.decode("utf-8").removeprefix("\ufeff")
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error as exc:
            raise InputError(path, f"not a readable CSV file ({exc})") from exc
        width = max((len(r) for r in rows), default=0)
        grid = pl.DataFrame(
            {f"column_{i + 1}": [r[i] if i < len(r) else None for r in rows] for i in range(width)},
            schema={f"column_{i + 1}": pl.String for i in range(width)},
        )
    if grid.height == 0:
        raise InputError(path, "the file has no header row")
    header = [v or "" for v in grid.row(0)]
    body = grid.slice(1).with_columns(pl.int_range(2, grid.height + 1, dtype=pl.Int64).alias(LINE))
    body = body.rename({old: f"col_{i}" for i, old in enumerate(grid.columns)})
    return header, body, encoding


def _cell_text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time):
        return v.strftime("%H:%M:%S")
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return None
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        if abs(v) >= 1e15:
            # A long number Excel stored as a float has lost digits; keep it visibly mangled.
            return f"{v:.8E}"
        return repr(v)
    return str(v)


def _xlsx_rows(path: Path) -> tuple[list[str], list[list[str | None]], list[int]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a bad zip or XML
        raise InputError(path, f"not a readable XLSX workbook ({type(exc).__name__})") from exc
    try:
        ws = wb.worksheets[0]
        header: list[str] | None = None
        rows: list[list[str | None]] = []
        lines: list[int] = []
        for number, row in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in row]
            if header is None:
                if any(c and c.strip() for c in cells):
                    header = [c or "" for c in cells]
                continue
            rows.append(cells)
            lines.append(number)
    finally:
        wb.close()
    if header is None:
        raise InputError(path, "the first sheet is empty: no header row")
    return header, rows, lines


def _map_headers(path: Path, header: list[str], contract: Contract) -> tuple[dict[int, str], list[str]]:
    known = contract.header_map()
    mapping: dict[int, str] = {}
    seen: dict[str, str] = {}
    ignored: list[str] = []
    for i, h in enumerate(header):
        name = known.get(fold_header(h or ""))
        if name is None:
            if (h or "").strip():
                ignored.append(h.strip())
            continue
        if name in seen:
            raise InputError(
                path, f"columns {seen[name]!r} and {h.strip()!r} both mean {name} ({contract.column(name).zh}); "
                "keep one of them", column=h.strip(),
            )
        seen[name] = h.strip()
        mapping[i] = name
    missing = [c for c in contract.required if c not in seen]
    if missing:
        col = contract.column(missing[0])
        raise InputError(
            path,
            f"required column missing for {contract.zh}: expected a header {col.zh!r} or {col.name!r}; "
            f"missing: {', '.join(contract.column(m).zh for m in missing)}; found: {', '.join(h for h in header if h)}",
            column=col.zh,
        )
    return mapping, ignored


def _select(mapping: dict[int, str], body: pl.DataFrame) -> pl.DataFrame:
    """body: col_i String columns and LINE. Fully blank rows are formatting, not people, and are dropped."""
    value_cols = [c for c in body.columns if c != LINE]
    blank = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in value_cols])
    body = body.filter(~blank) if value_cols else body
    def cell(i: int) -> pl.Expr:
        c = pl.col(f"col_{i}")
        return pl.when(c.str.strip_chars() == "").then(None).otherwise(c)

    return body.select([cell(i).alias(name) for i, name in mapping.items()] + [pl.col(LINE)])


def _rows_frame(rows: list[list], lines: list[int], width: int) -> pl.DataFrame:
    cols = {f"col_{i}": [r[i] if i < len(r) else None for r in rows] for i in range(width)}
    frame = pl.DataFrame(cols, schema={c: pl.String for c in cols})
    return frame.with_columns(pl.Series(LINE, lines, dtype=pl.Int64))


def read_table(path: Path | str, contract: Contract) -> RawTable:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        header, body, encoding = _csv_table(path)
    elif suffix in (".xlsx", ".xlsm"):
        header, rows, lines = _xlsx_rows(path)
        body = _rows_frame(rows, lines, len(header))
        encoding = "xlsx"
    elif suffix == ".parquet":
        try:
            pq = pl.read_parquet(path)
        except Exception as exc:
            raise InputError(path, f"not a readable Parquet file ({type(exc).__name__})") from exc
        header = pq.columns
        body = pq.select(
            [pl.col(c).cast(pl.String).alias(f"col_{i}") for i, c in enumerate(pq.columns)]
        ).with_columns(pl.int_range(1, pq.height + 1, dtype=pl.Int64).alias(LINE))
        encoding = "parquet"
    else:
        raise InputError(path, f"unsupported file type {suffix!r}: expected .csv, .xlsx or .parquet")
    mapping, ignored = _map_headers(path, header, contract)
    return RawTable(path=str(path), frame=_select(mapping, body), encoding=encoding, ignored_columns=ignored)
