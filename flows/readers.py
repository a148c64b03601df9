"""Reading exports as they arrive: CSV in UTF-8, UTF-8 with BOM, UTF-16 or GB18030/GBK; XLSX; Parquet.

Every cell is read as text (an ID or phone must never pass through a float), headers are mapped to the
contract from English or Chinese spellings, and each row keeps the line number a person sees when
opening the file. A problem with the file as a whole raises InputError, naming file and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import BinaryIO

import polars as pl
import xxhash

from flows.transcode import decode_error, transcode
from flows.uncached_read import cached_blocks, uncached_blocks
from transforms.contract import Contract, fold_header
from transforms.parsing import LINE


class InputError(Exception):
    """A file that cannot be used at all; the message says which file, which column, what was expected."""

    def __init__(self, path: Path | str, message: str, *, column: str | None = None):
        self.path, self.message, self.column = str(path), message, column
        where = f"{self.path}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Raised in the loading process and raised again in the flow's: pickled with what it was made of.
        return _input_error, (self.path, self.message, self.column)


def _input_error(path: str, message: str, column: str | None) -> InputError:
    return InputError(path, message, column=column)


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

    def slices(self, size: int) -> Iterator[pl.DataFrame]:
        """The rows size at a time (one empty slice if there are none), as CsvTable gives a CSV export's;
        the table lets go of its rows after the last."""
        for at in range(0, max(self.frame.height, 1), size):
            yield self.frame.slice(at, size)
        self.frame = self.frame.clear()


SLICE_ROWS = 1_000_000  # rows of a CSV export read at a time when it is read whole (read_table)


_UTF8_SLICE = 1 << 24  # bytes read, checked or transcoded at a time: a city's export is gigabytes
_BOM8 = b"\xef\xbb\xbf"
_HINT_BYTES = 1 << 22  # read to guess how many rows a CSV export holds


def _blocks(path: Path, start: int = 0) -> Iterator[bytes]:
    return cached_blocks(path, start, _UTF8_SLICE)  # the slice as it is when called (the tests shrink it)


class _Seen:
    """What CsvTable.end says of the file (_Bytes: size, digest, line breaks, last byte, and whether it holds a
    NUL byte), taken while the pass that checks or transcodes its encoding reads every byte of it anyway: a
    second pass to hash the exports took 17 s at 20M residents. The hash runs in a thread of its own (xxhash
    lets go of the GIL) while the next block is read and checked. Use as a context manager; bytes() once the
    pass has read the whole file."""

    def __init__(self) -> None:
        self._h, self.size, self.breaks, self.last, self.nul = _hasher(), 0, 0, b"", False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
        self._hashing = None

    def add(self, block: bytes) -> None:
        """The next block of the file (a bytes object of its own, not a buffer used again)."""
        if self._hashing is not None:
            self._hashing.result()
        self._hashing = self._pool.submit(self._h.update, block)
        self.size += len(block)
        self.breaks += block.count(b"\n")
        self.nul = self.nul or b"\x00" in block
        self.last = block[-1:] or self.last

    def bytes(self) -> _Bytes:
        if self._hashing is not None:
            self._hashing.result()
        return _Bytes(self.size, self._h.hexdigest(), self.breaks, self.last, None)

    def __enter__(self) -> _Seen:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


def _decode_error(path: Path, encoding: str, start: int = 0, out: BinaryIO | None = None) -> int | None:
    """The byte offset of the first sequence from byte `start` on that is not valid in encoding, or None;
    the decoded text is written to out as UTF-8 if given (flows.transcode.decode_error)."""
    return decode_error(_blocks(path, start), encoding, start, out)


def _complete(block: bytes) -> int:
    """Where the UTF-8 character the block may end inside begins (len(block) when it ends on a boundary)."""
    for back in range(1, min(4, len(block)) + 1):
        lead = block[-back]
        if lead & 0xC0 != 0x80:  # not a continuation byte
            size = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
            return len(block) - back if size > back else len(block)
    return len(block)


def _utf8_error(path: Path, start: int = 0, seen: _Seen | None = None) -> int | None:
    """_decode_error for UTF-8, checked first by polars' validator (twenty times Python's decoder, which a
    city's gigabytes of export spent seconds in); only a file that fails is decoded again to say where."""
    carry = b""
    for block in _blocks(path, start):
        if seen is not None:
            seen.add(block)
        block = carry + block
        cut = _complete(block)
        block, carry = block[:cut], block[cut:]
        try:
            pl.Series([block], dtype=pl.Binary).cast(pl.String)
        except pl.exceptions.ComputeError:
            return _decode_error(path, "utf-8", start)
    return _decode_error(path, "utf-8", start) if carry else None


def _text_file(path: Path, temp: Path) -> tuple[Path, str, _Bytes, bool]:
    """(the file as UTF-8 text on disk, the encoding it came in, what end() says of the file's bytes, whether
    the text holds a NUL byte): the file itself when it is UTF-8 (BOM or not: the CSV reader skips the BOM),
    else a copy transcoded a slice at a time into temp. GB18030 is a superset of GBK and GB2312; neither it
    nor UTF-8 has a zero byte inside a character, so the file's bytes say whether the text has a NUL."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(_BOM8):
        with _Seen() as seen:
            seen.add(_BOM8)
            bad = _utf8_error(path, 3, seen)
            if bad is not None:
                raise InputError(path, f"marked as UTF-8 but byte {bad} is not: truncated or mixed "
                                 "encodings (save the file again as UTF-8)")
            return path, "utf-8-sig", seen.bytes(), seen.nul
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        with _Seen() as seen:
            text = _transcoded(path, "utf-16", temp, lambda at: InputError(
                path, f"truncated or corrupt UTF-16 text (byte {at})"), seen)
            return text, "utf-16", seen.bytes(), any(b"\x00" in block for block in _blocks(text))
    with _Seen() as seen:
        if _utf8_error(path, 0, seen) is None:
            return path, "utf-8", seen.bytes(), seen.nul
    with _Seen() as seen:
        text = _transcoded(path, "gb18030", temp, lambda at: InputError(
            path, "unknown text encoding: expected UTF-8 (with or without BOM), UTF-16 or GB18030/GBK"), seen)
        return text, "gb18030", seen.bytes(), seen.nul


def _transcoded(path: Path, encoding: str, temp: Path, error, seen: _Seen) -> Path:
    text = temp / "utf8.csv"
    bad = transcode(path, encoding, text, seen.add, _UTF8_SLICE)
    if bad is not None:
        raise error(bad)
    return text


def _first_line(text: Path) -> str:
    with open(text, "rb") as fh:
        head = fh.read(1 << 20).removeprefix(_BOM8).lstrip(b"\r\n")
    return head.split(b"\n", 1)[0].decode("utf-8", errors="ignore")


def _numbered(grid: pl.DataFrame, first: int) -> pl.DataFrame:
    """Rows of a grid (column_1..n) as col_0..col_n-1 and LINE, the first being line `first`."""
    body = grid.rename({old: f"col_{i}" for i, old in enumerate(grid.columns)})
    return body.with_columns(pl.int_range(first, first + grid.height, dtype=pl.Int64).alias(LINE))


@dataclass(frozen=True)
class TextEnd:
    """Where a CSV export read whole ended, so that the next refresh, given the same export grown at its end
    (a test system's export of the day, taken again two hours later), reads only the rows added to it. The
    next file must begin with exactly these bytes (size, digest: _hasher's); `closed` says the last byte ended a row
    (a line break, and as many rows read as line breaks: no cell ran over a line, so none can run on into
    what was added); the rest is how it was read, which the added rows are read with."""

    size: int
    digest: str
    closed: bool
    encoding: str
    delimiter: str
    header: str  # its first line, read again before the added rows: they are cut or padded to it alike
    mapping: dict[int, str]
    ignored_columns: list[str]
    next_line: int  # the line number the first added row will have

    def json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TextEnd:
        return cls(**(d | {"mapping": {int(k): v for k, v in d["mapping"].items()}}))


def _hasher() -> xxhash.xxh3_128:
    """The hash a read export's bytes are known by, to find them again at the start of the grown export two
    hours later: every byte of it is hashed at every refresh (9.7 GB at 20M residents after a day of
    batches). XXH3-128 hashes 14.8 GB/s on a core here, SHA-256 0.9: about the disk's pace (1.0-1.2 GB/s
    read past the page cache), so the check takes as long either way (the disk's time), but no longer a core
    for all of it. It tells bytes that changed from bytes that did not (two different prefixes share a
    digest about once in 2^128), not a forgery from the file: the export is the test system's own."""
    return xxhash.xxh3_128()


class NotGrown(Exception):
    """The file is not the last one read plus rows at its end (or its added bytes cannot be read alone)."""


@dataclass(frozen=True)
class _Bytes:
    size: int
    digest: str
    line_breaks: int
    last: bytes
    prefix_digest: str | None  # of the first `prefix` bytes asked for


def _digest(path: Path, prefix: int | None = None, breaks_in_prefix: int | None = None,
            stop: threading.Event | None = None) -> _Bytes | None:
    """One pass over the file: its digest (and that of its first `prefix` bytes), its line breaks.
    breaks_in_prefix: the line breaks of the first `prefix` bytes, known already (the last read counted them,
    and the prefix's digest must match for them to be used): only those after it are counted.

    The hash runs in a thread of its own (xxhash lets go of the GIL) while the next block is read and its
    line breaks counted: at 20M residents the grown export (4.5 GB) took 4.7 s one step after the other. The
    blocks are read past the page cache (flows.uncached_read). None if `stop` was set before the end."""
    count_from = 0 if breaks_in_prefix is None or prefix is None else prefix
    h, size, breaks, last, at_prefix = _hasher(), 0, breaks_in_prefix if count_from else 0, b"", None
    if prefix == 0:
        at_prefix = h.hexdigest()

    def update(block: bytes, cut: int | None) -> str | None:
        if cut is None:
            h.update(block)
            return None
        h.update(block[:cut])
        seen = h.hexdigest()  # hashlib goes on from here
        h.update(block[cut:])
        return seen

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest") as hasher:
        hashing = None
        for block in uncached_blocks(path):
            if stop is not None and stop.is_set():
                return None
            cut = prefix - size if prefix is not None and size < prefix <= size + len(block) else None
            if hashing is not None:
                at_prefix = hashing.result() or at_prefix
            hashing = hasher.submit(update, block, cut)
            if size + len(block) > count_from:
                breaks += bytes(block[max(0, count_from - size):]).count(b"\n")
            size, last = size + len(block), bytes(block[-1:])
        if hashing is not None:
            at_prefix = hashing.result() or at_prefix
    return _Bytes(size, h.hexdigest(), breaks, last, at_prefix)


class CsvTable:
    """A CSV export opened to be read a slice of rows at a time, so a city's export is never in memory whole.
    Opening checks the file as a whole (empty, encoding, NUL bytes, header) and raises InputError.

    after: the end of the same export as last read (TextEnd), whose bytes the caller found at the start of
    this file: only the rows after it are read (numbered on from it), with its encoding, delimiter and
    header. Anything the added bytes alone cannot be read by raises NotGrown: the file is then read whole,
    which gives the rows, or the error, a whole read gives."""

    def __init__(self, path: Path, contract: Contract, after: TextEnd | None = None) -> None:
        self.path, self._source, self._after = str(path), path, after
        self._temp = tempfile.TemporaryDirectory(prefix="gridsweep-text-")
        self._grid: pl.DataFrame | None = None  # the whole file, read forgivingly, when the fast reader refused it
        self._bytes: _Bytes | None = None
        self._start_check: StartCheck | None = None  # opened by grown_table: whether the file's start holds
        self.rows = 0  # rows read so far, blank rows not counted
        self.next_line = 2 if after is None else after.next_line  # the line after the header
        if after is not None:
            try:
                self._open_added(after)
            except BaseException:
                self._temp.cleanup()
                raise
            return
        if not any(not block.isspace() for block in _blocks(path)):
            raise InputError(path, "the file is empty")
        self._text, self.encoding, self._bytes, nul = _text_file(path, Path(self._temp.name))
        if nul:  # in UTF-8 a zero byte is only ever NUL
            raise InputError(path, "the file contains NUL bytes: it is not a text export (binary or truncated file?)")
        self._delimiter = max([",", "\t", ";", "|"], key=_first_line(self._text).count)
        try:
            top = self._scan().head(1).collect()
        except pl.exceptions.PolarsError:
            top = self._grid = self._forgiving()
        if top.height == 0:
            raise InputError(path, "the file has no header row")
        self._header = _first_line(self._text).removesuffix("\r")
        self.mapping, self.ignored_columns = _map_headers(path, [v or "" for v in top.row(0)], contract)

    def start_holds(self) -> bool:
        """The file begins with the bytes its last read ended at (True for a file read whole): waits for the
        check grown_table started."""
        return self._start_check is None or self._start_check.holds()

    def _open_added(self, after: TextEnd) -> None:
        """The bytes after `after` as UTF-8 text in the temporary folder, checked as a whole read checks."""
        self.encoding, self._delimiter, self._header = after.encoding, after.delimiter, after.header
        self.mapping, self.ignored_columns = dict(after.mapping), list(after.ignored_columns)
        self._text = Path(self._temp.name) / "added.csv"
        if after.encoding in ("utf-8", "utf-8-sig"):
            if _utf8_error(self._source, after.size) is not None:
                raise NotGrown("the added bytes are not UTF-8")
            with open(self._text, "wb") as out:
                out.write(after.header.encode("utf-8") + b"\n")
                for block in _blocks(self._source, after.size):
                    out.write(block)
        elif after.encoding == "gb18030":
            with open(self._text, "wb") as out:
                out.write(after.header.encode("utf-8") + b"\n")
                if _decode_error(self._source, "gb18030", after.size, out) is not None:
                    raise NotGrown("the added bytes are not GB18030")
        else:
            raise NotGrown(f"rows added to {after.encoding} text are not read alone")
        if any(b"\x00" in block for block in _blocks(self._text)):
            raise NotGrown("the added bytes hold NUL bytes")
        try:
            self._scan().select(pl.len()).collect()
        except pl.exceptions.PolarsError as exc:
            raise NotGrown("the added rows need the forgiving reader") from exc

    def _scan(self) -> pl.LazyFrame:
        # Rows longer than the header lose their extra cells, which no header names: as the forgiving reader.
        return pl.scan_csv(self._text, has_header=False, infer_schema=False, separator=self._delimiter,
                           raise_if_empty=False, truncate_ragged_lines=True)

    def _forgiving(self) -> pl.DataFrame:
        """Stray quotes and other damage: the standard library reader is slower but forgiving."""
        text = self._text.read_bytes().decode("utf-8").removeprefix("\ufeff")
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self._delimiter))
        except csv.Error as exc:
            raise InputError(self.path, f"not a readable CSV file ({exc})") from exc
        width = max((len(r) for r in rows), default=0)
        return pl.DataFrame(
            {f"column_{i + 1}": [r[i] if i < len(r) else None for r in rows] for i in range(width)},
            schema={f"column_{i + 1}": pl.String for i in range(width)},
        )

    def _grids(self, size: int) -> Iterator[pl.DataFrame]:
        if self._grid is not None:
            yield from (self._grid.slice(at, size) for at in range(0, self._grid.height, size))
            return
        given = 0
        try:
            for grid in self._scan().collect_batches(chunk_size=size):
                given += 1
                yield grid
        except pl.exceptions.PolarsError as exc:
            if given:
                raise InputError(self.path, f"not a readable CSV file after row {self.rows + 1} ({exc})") from exc
            self._grid = self._forgiving()
            yield from self._grids(size)

    def rows_hint(self) -> int:
        """About how many rows the file holds, from its size and the lines in its first megabytes (a cell
        running over lines only makes the guess high)."""
        if self._grid is not None:
            return self._grid.height
        with open(self._text, "rb") as fh:
            head = fh.read(_HINT_BYTES)
        lines = head.count(b"\n")
        size = self._text.stat().st_size
        return size if not lines else math.ceil(size / (len(head) / lines))

    def slices(self, size: int) -> Iterator[pl.DataFrame]:
        """The rows as String columns named as in the contract, plus LINE (as a spreadsheet numbers them, the
        header being line 1), size rows at a time, fully blank rows dropped."""
        line, header = self.next_line - 1, True  # the header's line (an added row's text begins with it too)
        try:
            for grid in self._grids(size):
                body = _numbered(grid, line)
                if header:
                    body, header = body.slice(1), False
                line += grid.height
                body = _select(self.mapping, body)
                self.rows += body.height
                yield body
            self.next_line = line
        finally:
            self._temp.cleanup()

    def end(self) -> TextEnd | None:
        """Where this read ended, once every slice is read (None: the forgiving reader read it, whose rows
        the fast reader's on the added bytes alone could differ from). The file's bytes were taken in when it
        was opened (the encoding's pass) or by grown_table's check (StartChanged: they are not the last read's)."""
        if self._grid is not None:
            return None
        if self._bytes is None and self._start_check is not None:
            if not self.start_holds():
                raise StartChanged(self.path)
            self._bytes = self._start_check.bytes()
        seen = self._bytes
        assert seen is not None, "the file's bytes were not taken in"
        closed = (seen.last == b"\n" and seen.line_breaks == self.next_line - 1
                  and self.encoding in ("utf-8", "utf-8-sig", "gb18030"))  # a line break is byte 0x0A alone
        return TextEnd(seen.size, seen.digest, closed, self.encoding, self._delimiter, self._header,
                       self.mapping, self.ignored_columns, self.next_line)


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
    """body: col_i String columns and LINE. Fully blank rows are formatting, not people, and are dropped. The
    cells are kept as typed: the parser strips them and takes a blank one as missing
    (transforms.parsing.parse_rows); doing it here too was 0.36 of the 0.39 CPU-s this took on the 1M city's
    test export."""
    value_cols = [c for c in body.columns if c != LINE]
    if value_cols:
        def blank(c: str) -> pl.Expr:
            return pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "")

        # Only a row whose first cell is blank can be blank throughout: the other cells are read for those.
        first = body.select(blank(value_cols[0])).to_series()
        if first.any():
            maybe = body.filter(first)
            if len(value_cols) > 1:
                maybe = maybe.filter(pl.all_horizontal([blank(c) for c in value_cols[1:]]))
            gone = maybe[LINE]
            if gone.len():
                body = body.filter(~pl.col(LINE).is_in(gone.implode()))
    return body.select([pl.col(f"col_{i}").alias(name) for i, name in mapping.items()] + [pl.col(LINE)])


def _rows_frame(rows: list[list], lines: list[int], width: int) -> pl.DataFrame:
    cols = {f"col_{i}": [r[i] if i < len(r) else None for r in rows] for i in range(width)}
    frame = pl.DataFrame(cols, schema={c: pl.String for c in cols})
    return frame.with_columns(pl.Series(LINE, lines, dtype=pl.Int64))


def open_table(path: Path | str, contract: Contract) -> RawTable | CsvTable:
    """A CSV export opened to be read in slices; a workbook or Parquet file read whole (they are small)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return CsvTable(path, contract)
    if suffix in (".xlsx", ".xlsm"):
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


class StartChanged(Exception):
    """A grown export's first bytes are not those last read, found once its added rows were read."""


class StartCheck:
    """Whether a file still begins with the bytes `last` read, found by a thread of its own: the check reads
    them all (6.3 GB at 20M residents, growing through the day; 5-8 s of a two-hour refresh with a core of two
    idle), so the added rows are read, parsed and normalised meanwhile, and their load is used only once the
    check holds (flows.sources.SourceLoader). holds() waits for it."""

    def __init__(self, path: Path, last: TextEnd) -> None:
        self.last, self._stop, self._seen = last, threading.Event(), Future()
        # a closed end: a line break ended each line, so the breaks before it are known
        self._thread = threading.Thread(target=self._run, args=(path, last.size, last.next_line - 1),
                                        name="start-check", daemon=True)
        self._thread.start()

    def _run(self, path: Path, size: int, breaks: int) -> None:
        try:
            self._seen.set_result(_digest(path, size, breaks, self._stop))
        except BaseException as exc:  # a file gone or unreadable meanwhile: it does not hold
            self._seen.set_exception(exc)

    def holds(self) -> bool:
        """The file began with the bytes last read when it was read through (an error reading it: no)."""
        try:
            seen = self._seen.result()
        except Exception:  # noqa: BLE001 (the whole read that follows meets it, and says what it is)
            return False
        return seen is not None and seen.prefix_digest == self.last.digest

    def bytes(self) -> _Bytes:
        """The whole file's _Bytes, once it holds."""
        assert self.holds(), "the file's start changed"
        return self._seen.result()

    def stop(self) -> None:
        """The check is not wanted: its thread stops at its next block."""
        self._stop.set()
        self._thread.join()


def grown_table(path: Path | str, contract: Contract, last: TextEnd) -> CsvTable | None:
    """The CSV export at path opened to read only the rows added since it was `last` read, if that may be what
    it is (it ended a row, and is not smaller): None, read it whole. Whether it does begin with the bytes last
    read is checked while its rows are read (StartCheck): the reader asks CsvTable.start_holds() before it uses
    them, and end() raises StartChanged if it does not."""
    path = Path(path)
    if not last.closed or path.suffix.lower() not in (".csv", ".txt", ".tsv") or path.stat().st_size < last.size:
        return None
    check = StartCheck(path, last)
    try:
        table = CsvTable(path, contract, after=last)
    except NotGrown:
        check.stop()
        return None
    except BaseException:
        check.stop()
        raise
    table._start_check = check
    return table


def read_table(path: Path | str, contract: Contract) -> RawTable:
    """The whole file in memory (a dropped inbox file, the tests): a CSV export's slices put together."""
    table = open_table(path, contract)
    if isinstance(table, RawTable):
        return table
    frame = pl.concat(list(table.slices(SLICE_ROWS)), how="vertical")
    return RawTable(path=table.path, frame=frame, encoding=table.encoding, ignored_columns=table.ignored_columns)
