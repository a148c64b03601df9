"""A small XLSX (Office Open XML) writer for the one kind of book gridsweep writes: text cells, a fixed set
of styles (STYLES), column widths, a frozen header, an autofilter, dropdown lists, A4 print setup.

Why not xlsxwriter: it builds every cell in Python, ~3 us a cell, and a district's 10,000 books hold
tens of millions of cells. Here the rows of all sheets of one layout are rendered to XML by one polars
query (render_rows), so the cost is mostly the zip. Cells are inline strings (the form xlsxwriter itself
writes in its constant-memory mode): every value stays text, so a name starting with '=' is never a
formula and an ID is never a number. The layout follows ECMA-376 Part 1 (element order in §18.3.1.99 worksheet).

The package is zipped here too (APPNOTE 4.3: local headers, data, central directory), not by zipfile: the
parts that never change are compressed once, and a sheet unchanged since the last book is copied as it was
stored there (read_entries), neither rendered nor compressed again. When test records arrive, a worker's
vaccination sheet, most of their rows, stays the same.
"""

from __future__ import annotations

import functools
import re
import struct
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import polars as pl
from isal import isal_zlib

from flows.spare_files import write_into

MAX_ROWS = 1_048_576  # Excel's limit, header included
_STORE_BELOW = 4096  # bytes: a part this small is stored, not deflated (write_xlsx)
MAX_CHARS = 32_767  # Excel's limit for one cell: a longer text makes Excel "repair" the file; it is cut
STYLES = {"default": 0, "head": 1, "cell": 2, "fill": 3, "title": 4, "quarantine_head": 5}

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Characters XML 1.0 cannot carry are written as Excel's _xHHHH_ escape; so is a literal _xHHHH_ in the text.
_CONTROL = [chr(i) for i in range(32) if chr(i) not in "\t\n\r"]
_CONTROL_ESCAPED = [f"_x{ord(c):04X}_" for c in _CONTROL]
_ESCAPE_LIKE = re.compile(r"(_x[0-9A-Fa-f]{4}_)")
# Excel trims the spaces at the ends of a text unless told to keep them; most texts have none, and the
# attribute is a fifth of a cell's bytes.
_EDGE_SPACE = r"^\s|\s$"
_PRESERVE = '<t xml:space="preserve">'
_CONTROL_TABLE = str.maketrans(dict(zip(_CONTROL, _CONTROL_ESCAPED, strict=True)))
_NEEDS_ESCAPE = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f]|_x[0-9A-Fa-f]{4}_")


@dataclass(frozen=True)
class Validation:
    """A dropdown on one column, from the first data row to last_row (1-based, inclusive)."""

    column: int  # 0-based
    last_row: int
    choices: tuple[str, ...]
    title: str
    prompt: str


@dataclass
class Sheet:
    name: str
    frame: pl.DataFrame | None = None  # a header row from its column names, then one row per frame row
    styles: list[str] | None = None  # the data cells' style per column; header cells use header_style
    header_style: str = "head"
    cells: list[tuple[int, int, str, str]] = field(default_factory=list)  # free cells: row, col, text, style
    widths: list[float] = field(default_factory=list)
    freeze: tuple[int, int] | None = None  # rows, columns frozen
    autofilter: bool = False
    validations: list[Validation] = field(default_factory=list)
    landscape_a4: bool = False  # A4 landscape, one page wide, header row repeated, header text below
    page_header: str = ""
    rows_xml: bytes | memoryview | None = None  # the frame's rows as UTF-8 XML, set by render_rows


@functools.lru_cache(maxsize=1024)
def col_name(j: int) -> str:
    name = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        name = chr(65 + r) + name
    return name


def _text(value: str) -> str:
    """One cell's text as XML, for the few cells written one at a time (headers, the summary sheet);
    most need no escaping, and a district writes a hundred such cells in each of its 10,000 books."""
    value = value[:MAX_CHARS]
    if not _NEEDS_ESCAPE.search(value):
        return value
    return escape(_ESCAPE_LIKE.sub(r"_x005F\1", value)).translate(_CONTROL_TABLE)


def _text_expr(col: pl.Expr) -> pl.Expr:
    """The same as _text, column-wise."""
    col = col.str.slice(0, MAX_CHARS).str.replace_all(_ESCAPE_LIKE.pattern, "_x005F$1")
    col = col.str.replace_many(["&", "<", ">"], ["&amp;", "&lt;", "&gt;"])
    return col.str.replace_many(_CONTROL, _CONTROL_ESCAPED)


@functools.lru_cache(maxsize=4096)  # a summary sheet's labels and many of its figures are the same in every book
def _cell(ref: str, text: str, style: str) -> str:
    s = STYLES[style]
    if not text:
        return f'<c r="{ref}" s="{s}"/>'
    t = _PRESERVE if re.search(_EDGE_SPACE, text) else "<t>"
    return f'<c r="{ref}" s="{s}" t="inlineStr"><is>{t}{_text(text)}</t></is></c>'


_ROW, _SHEET = "\x00row", "\x00sheet"  # helper columns no header can be called


def render_rows(sheets: list[Sheet]) -> None:
    """Renders the data rows (<row> elements, from row 2) of every sheet with a frame into rows_xml, one
    polars query per sheet layout (columns and styles) for all the sheets of that layout: a query costs
    about 2 ms however small its sheet, and a district writes tens of thousands of small sheets."""
    layouts: dict[tuple, list[Sheet]] = {}
    for sheet in sheets:
        if sheet.frame is not None and sheet.rows_xml is None:
            styles = tuple(sheet.styles or ["default"] * sheet.frame.width)
            layouts.setdefault((tuple(sheet.frame.columns), styles), []).append(sheet)
    for (columns, styles), group in layouts.items():
        heights = np.array([s.frame.height for s in group], dtype=np.int64)
        if not heights.sum():
            for s in group:
                s.rows_xml = b""
            continue
        starts = np.cumsum(heights) - heights
        numbers = np.arange(int(heights.sum()), dtype=np.int64) - np.repeat(starts, heights) + 2
        rows = pl.concat([s.frame for s in group], how="vertical_relaxed").with_columns(
            pl.Series(_ROW, numbers).cast(pl.String))
        # Each column's cells first, a column apiece (polars makes them side by side), then each row of them,
        # then every row of the layout as one text cut at the sheets' ends: a join per sheet, and the cells as
        # one expression, took twice as long.
        cells = rows.select(pl.col(_ROW), *_cell_exprs(columns, styles))
        lines = cells.select(pl.concat_str([pl.lit('<row r="'), pl.col(_ROW), pl.lit('">'),
                                            *(pl.col(f"{_CELL}{j}") for j in range(len(columns))),
                                            pl.lit("</row>")]).alias("line")).to_series()
        ends = np.cumsum(lines.str.len_bytes().to_numpy().astype(np.int64))
        # Each sheet's rows a view of the layout's text, not a copy: the text is a few hundred MB at 1M residents,
        # and each copy of it was memory the kernel had to hand out and zero again.
        whole = memoryview(lines.str.join("").cast(pl.Binary).item())
        sheet_ends = ends[np.cumsum(heights) - 1].tolist()  # a sheet of no rows ends where the one before did
        at = 0
        for s, height, end in zip(group, heights.tolist(), sheet_ends, strict=True):
            if height:
                s.rows_xml, at = whole[at:end], end
            else:
                s.rows_xml = b""


_CELL = "\x00cell"  # + column number: helper columns no header can be called


@functools.lru_cache(maxsize=256)
def _cell_exprs(columns: tuple[str, ...], styles: tuple[str, ...]) -> tuple[pl.Expr, ...]:
    r = pl.col(_ROW)
    exprs = []
    for j, (name, style) in enumerate(zip(columns, styles, strict=True)):
        v = pl.col(name).cast(pl.String)
        ref, s = col_name(j), STYLES[style]
        # Most texts need no escaping (_NEEDS_ESCAPE finds the few) and are far shorter than a cell may hold.
        text = pl.when(v.str.len_bytes() > MAX_CHARS).then(v.str.slice(0, MAX_CHARS)).otherwise(v)
        text = pl.when(text.str.contains(_NEEDS_ESCAPE.pattern)).then(_text_expr(text)).otherwise(text)
        tag = pl.when(v.str.contains(_EDGE_SPACE)).then(pl.lit(_PRESERVE)).otherwise(pl.lit("<t>"))
        exprs.append(pl.concat_str([
            pl.lit(f'<c r="{ref}'), r,
            pl.when(v.is_null() | (v == "")).then(pl.lit(f'" s="{s}"/>'))
            .otherwise(pl.concat_str([pl.lit(f'" s="{s}" t="inlineStr"><is>'), tag, text, pl.lit("</t></is></c>")])),
        ]).alias(f"{_CELL}{j}"))
    return tuple(exprs)


def _width(chars: float) -> float:
    """Character width to the stored column width (ECMA-376 §18.3.1.13, 7-pixel digits, 5 pixels padding)."""
    return int((int(chars * 7 + 0.5) + 5) / 7 * 256) / 256


@functools.lru_cache(maxsize=256)
def _header_row(columns: tuple[str, ...], style: str) -> str:
    """Every book of a layout has the same header row: rendered once."""
    return '<row r="1">' + "".join(_cell(f"{col_name(j)}1", h, style) for j, h in enumerate(columns)) + "</row>"


# The parts of a sheet that are the same in every book of a layout, made once: a district's books have a few
# layouts, and building them for each of 77,481 books was most of the Python time of writing one.
@functools.lru_cache(maxsize=256)
def _views_and_columns(selected: bool, freeze: tuple[int, int] | None, widths: tuple[float, ...]) -> str:
    tab = 'tabSelected="1" ' if selected else ""
    x = [f'<sheetViews><sheetView {tab}workbookViewId="0">']
    if freeze:
        fr, fc = freeze
        top = f"{col_name(fc)}{fr + 1}"
        pane = "bottomRight" if fr and fc else ("bottomLeft" if fr else "topRight")
        split = (f'xSplit="{fc}" ' if fc else "") + (f'ySplit="{fr}" ' if fr else "")
        x.append(f'<pane {split}topLeftCell="{top}" activePane="{pane}" state="frozen"/>'
                 f'<selection pane="{pane}" activeCell="{top}" sqref="{top}"/>')
    x.append("</sheetView></sheetViews><sheetFormatPr defaultRowHeight=\"15\"/>")
    if widths:
        x.append("<cols>" + "".join(f'<col min="{j + 1}" max="{j + 1}" width="{_width(w)}" customWidth="1"/>'
                                    for j, w in enumerate(widths)) + "</cols>")
    x.append("<sheetData>")
    return "".join(x)


@functools.lru_cache(maxsize=256)
def _validation_parts(title: str, prompt: str, choices: tuple[str, ...]) -> tuple[str, str]:
    """A dropdown's element before and after its range."""
    return (f'<dataValidation type="list" errorStyle="warning" allowBlank="1" showInputMessage="1" '
            f'showErrorMessage="1" promptTitle={quoteattr(title)} prompt={quoteattr(prompt)} sqref="',
            f'"><formula1>{escape(chr(34) + ",".join(choices) + chr(34))}</formula1></dataValidation>')


def _sheet_xml(sheet: Sheet, selected: bool) -> tuple[bytes | memoryview, ...]:
    """The sheet's part in pieces, for entry() to take one after the other: joined, the rows were copied once more."""
    frame = sheet.frame
    ncols = max([frame.width if frame is not None else 0, *(c + 1 for _, c, _, _ in sheet.cells), 1])
    rows_used = (frame.height + 1 if frame is not None else 0)
    rows_used = max([rows_used, *(r + 1 for r, _, _, _ in sheet.cells), 1])
    x = [_HEAD, f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">']
    if sheet.landscape_a4:
        x.append('<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>')
    x.append(f'<dimension ref="A1:{col_name(ncols - 1)}{rows_used}"/>')
    x.append(_views_and_columns(selected, sheet.freeze, tuple(sheet.widths)))
    if frame is not None and sheet.cells:
        raise ValueError(f"sheet {sheet.name}: free cells and a frame cannot share a sheet")
    free: dict[int, list[tuple[int, str, str]]] = {}
    for r, c, text, style in sheet.cells:
        free.setdefault(r, []).append((c, text, style))
    for r in sorted(free):
        cells = "".join(_cell(f"{col_name(c)}{r + 1}", t, s) for c, t, s in sorted(free[r]))
        x.append(f'<row r="{r + 1}">{cells}</row>')
    if frame is not None:
        x.append(_header_row(tuple(frame.columns), sheet.header_style))
        if sheet.rows_xml is None:
            render_rows([sheet])
    before_rows, x = "".join(x).encode(), ["</sheetData>"]
    if sheet.autofilter and frame is not None:
        x.append(f'<autoFilter ref="A1:{col_name(frame.width - 1)}{max(frame.height, 1) + 1}"/>')
    if sheet.validations:
        x.append(f'<dataValidations count="{len(sheet.validations)}">')
        for v in sheet.validations:
            before, after = _validation_parts(v.title, v.prompt, v.choices)
            x.append(f"{before}{col_name(v.column)}2:{col_name(v.column)}{v.last_row}{after}")
        x.append("</dataValidations>")
    if sheet.landscape_a4:
        x.append('<pageMargins left="0.3" right="0.3" top="0.5" bottom="0.5" header="0.3" footer="0.3"/>')
        x.append('<pageSetup paperSize="9" orientation="landscape" fitToHeight="0"/>')
        if sheet.page_header:
            x.append(f"<headerFooter><oddHeader>{escape(sheet.page_header)}</oddHeader></headerFooter>")
    else:
        x.append('<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>')
    x.append("</worksheet>")
    return before_rows, sheet.rows_xml if frame is not None else b"", "".join(x).encode()


_STYLES_XML = (
    _HEAD + f'<styleSheet xmlns="{_MAIN}">'
    '<fonts count="3">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="14"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="5"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    + "".join(f'<fill><patternFill patternType="solid"><fgColor rgb="FF{c}"/><bgColor indexed="64"/></patternFill></fill>'
              for c in ("DDEBF7", "FFF2CC", "FCE4D6"))
    + "</fills>"
    '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border><border>'
    + "".join(f'<{side} style="thin"><color auto="1"/></{side}>' for side in ("left", "right", "top", "bottom"))
    + "<diagonal/></border></borders>"
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="6">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1" '
    'applyAlignment="1"><alignment vertical="center" wrapText="1"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="1" xfId="0" applyBorder="1" applyAlignment="1">'
    '<alignment vertical="top" wrapText="1"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="3" borderId="1" xfId="0" applyFill="1" applyBorder="1" applyAlignment="1" '
    'applyProtection="1"><alignment vertical="top"/><protection locked="0"/></xf>'
    '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="4" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '<dxfs count="0"/><tableStyles count="0" defaultTableStyle="TableStyleMedium9" defaultPivotStyle="PivotStyleLight16"/>'
    "</styleSheet>"
)


def _workbook_xml(sheets: list[Sheet]) -> str:
    names = []
    for i, s in enumerate(sheets):
        quoted = "'" + s.name.replace("'", "''") + "'"
        if s.autofilter and s.frame is not None:
            ref = f"{quoted}!$A$1:${col_name(s.frame.width - 1)}${max(s.frame.height, 1) + 1}"
            names.append(f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">{escape(ref)}</definedName>')
        if s.landscape_a4:
            names.append(f'<definedName name="_xlnm.Print_Titles" localSheetId="{i}">{escape(quoted)}!$1:$1</definedName>')
    entries = "".join(f'<sheet name={quoteattr(s.name)} sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i, s in enumerate(sheets))
    defined = f"<definedNames>{''.join(names)}</definedNames>" if names else ""
    return (_HEAD + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><workbookPr/>'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f"<sheets>{entries}</sheets>{defined}<calcPr calcId=\"124519\" fullCalcOnLoad=\"1\"/></workbook>")


@dataclass(frozen=True)
class Entry:
    """One part of a package as the zip stores it: compressed (or not), with its CRC and size."""

    crc: int
    size: int  # uncompressed
    method: int  # 0 stored, 8 deflated
    data: bytes


def entry(data: str | bytes | tuple[bytes | memoryview, ...]) -> Entry:
    # A deflate stream costs ~40 us to set up whatever its size, most parts are a few hundred bytes, and a
    # district writes 10,000 books of 13 parts: small parts are stored as they are. Deflated by ISA-L at its
    # level 1: the same format any zip reader inflates, 3.9 times as fast as zlib's level 1 on 1,691 sheets
    # of real books (56 MB: 0.065 against 0.251 s) and a little smaller; it was a third of the book threads' time.
    # A part given in pieces (a sheet: its rows are a view of its layout's text) is checked and deflated piece
    # by piece, never joined.
    pieces = (data.encode(),) if isinstance(data, str) else data if isinstance(data, tuple) else (data,)
    size = sum(len(piece) for piece in pieces)
    crc = 0
    for piece in pieces:
        crc = isal_zlib.crc32(piece, crc)
    if size < _STORE_BELOW:
        return Entry(crc, size, 0, b"".join(pieces))
    packer = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)  # raw deflate, as zip entries hold it
    return Entry(crc, size, 8, b"".join([*(packer.compress(piece) for piece in pieces), packer.flush()]))


_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # a central directory header, APPNOTE 4.3.12
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # a local file header, APPNOTE 4.3.7
_END = struct.Struct("<IHHHHIIH")  # the end of central directory record, APPNOTE 4.3.16


def read_entries(path: Path, names: set[str]) -> dict[str, Entry]:
    """The named parts of a package on disk, as stored (not inflated). Parts it lacks are left out.
    A package as zip_package writes it (no comment, no ZIP64) is read in one go and its directory parsed
    here, a tenth of what zipfile takes to list it; any other is read by zipfile."""
    data = path.read_bytes()
    if len(data) < _END.size or data[-_END.size:-_END.size + 4] != b"PK\x05\x06":
        return _read_entries_zipfile(path, names)
    try:
        return _parsed_entries(data, names, path)
    except struct.error as exc:  # an offset past the end
        raise zipfile.BadZipFile(f"{path}: {exc}") from exc


def _parsed_entries(data: bytes, names: set[str], path: Path) -> dict[str, Entry]:
    _, _, _, _, count, size, at, _ = _END.unpack_from(data, len(data) - _END.size)
    if at + size > len(data) - _END.size:
        raise zipfile.BadZipFile(f"{path}: the central directory lies outside the file")
    found: dict[str, Entry] = {}
    for _ in range(count):
        head = _CENTRAL.unpack_from(data, at)
        if head[0] != 0x02014B50:
            raise zipfile.BadZipFile(f"{path}: a central directory entry is damaged")
        method, crc, packed, unpacked, name_len, extra_len, comment_len, offset = (
            head[4], head[7], head[8], head[9], head[10], head[11], head[12], head[16])
        name = data[at + _CENTRAL.size:at + _CENTRAL.size + name_len].decode("utf-8", "replace")
        at += _CENTRAL.size + name_len + extra_len + comment_len
        if name not in names:
            continue
        local = _LOCAL.unpack_from(data, offset)
        start = offset + _LOCAL.size + local[9] + local[10]
        if local[0] != 0x04034B50 or start + packed > len(data) or method not in (0, 8):
            raise zipfile.BadZipFile(f"{path}: {name} cut short, damaged or in an unknown form")
        found[name] = Entry(crc, unpacked, method, data[start:start + packed])
    return found


def _read_entries_zipfile(path: Path, names: set[str]) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    with open(path, "rb") as fh, zipfile.ZipFile(fh) as z:
        for info in z.infolist():
            if info.filename not in names:
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"{path}: no local header for {info.filename}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            data = fh.read(info.compress_size)
            if len(data) != info.compress_size or info.compress_type not in (0, 8):
                raise zipfile.BadZipFile(f"{path}: {info.filename} cut short or in an unknown form")
            found[info.filename] = Entry(info.CRC, info.file_size, info.compress_type, data)
    return found


def _dos_time(at: datetime) -> tuple[int, int]:
    return (at.hour << 11) | (at.minute << 5) | (at.second // 2), ((at.year - 1980) << 9) | (at.month << 5) | at.day


def zip_package(parts: list[tuple[str, Entry]], at: datetime) -> bytes:
    """The parts as one zip archive: no data descriptors (sizes and CRCs are known) and no ZIP64 (a part
    over 4 GiB is refused; a sheet holds at most MAX_ROWS rows)."""
    clock, day = _dos_time(at)
    out: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, e in parts:
        raw = name.encode("ascii")
        if max(e.size, len(e.data), offset) > 0xFFFFFFFF:
            raise ValueError(f"{name}: too large for a zip without ZIP64")
        fixed = (e.method, clock, day, e.crc, len(e.data), e.size, len(raw))
        local = _LOCAL.pack(0x04034B50, 20, 0, *fixed, 0) + raw
        central.append(_CENTRAL.pack(0x02014B50, 20, 20, 0, *fixed, 0, 0, 0, 0, 0, offset) + raw)
        out += [local, e.data]
        offset += len(local) + len(e.data)
    directory = b"".join(central)
    end = _END.pack(0x06054B50, 0, 0, len(parts), len(parts), len(directory), offset, 0)
    return b"".join([*out, directory, end])


def sheet_part(i: int) -> str:
    """The package part of the i-th sheet (0-based), as write_xlsx names it."""
    return f"xl/worksheets/sheet{i + 1}.xml"


@functools.lru_cache(maxsize=64)
def _fixed_parts(n: int) -> tuple[tuple[str, Entry], ...]:
    """The parts that depend on nothing but the number of sheets, compressed once."""
    content_types = (
        _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        + "".join(f'<Override PartName="/{sheet_part(i)}" '
                  'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                  for i in range(n))
        + '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        '<Override PartName="/docProps/app.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/></Types>'
    )
    root_rels = (
        _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
        'core-properties" Target="docProps/core.xml"/>'
        f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/></Relationships>'
    )
    book_rels = (
        _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
        + "".join(f'<Relationship Id="rId{i + 1}" Type="{_REL}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
                  for i in range(n))
        + f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/></Relationships>'
    )
    app = (_HEAD + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
           "<Application>gridsweep</Application></Properties>")
    return (("[Content_Types].xml", entry(content_types)), ("_rels/.rels", entry(root_rels)),
            ("docProps/app.xml", entry(app)), ("xl/_rels/workbook.xml.rels", entry(book_rels)),
            ("xl/styles.xml", entry(_STYLES_XML)))


def write_xlsx(path: Path, sheets: list[Sheet], *, kept: dict[int, Entry] | None = None) -> None:
    """Writes the book to path (the caller writes into a staging folder, so a half-written file is never
    where a good one was). A frame longer than Excel allows is cut at its last row (the CSV keeps all).
    kept: sheets (by index) taken as the last book stored them, because what they show has not changed."""
    kept = kept or {}
    for s in sheets:
        if s.frame is not None and s.frame.height >= MAX_ROWS:
            s.frame, s.rows_xml = s.frame.head(MAX_ROWS - 1), None
    at = datetime.now(UTC)
    now = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    core = (
        _HEAD + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator>gridsweep</dc:creator>'
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{now}</dcterms:modified></cp:coreProperties>'
    )
    fixed = dict(_fixed_parts(len(sheets)))
    parts = [(name, fixed[name]) for name in ("[Content_Types].xml", "_rels/.rels", "docProps/app.xml")]
    parts += [("docProps/core.xml", entry(core)), ("xl/workbook.xml", entry(_workbook_xml(sheets))),
              ("xl/_rels/workbook.xml.rels", fixed["xl/_rels/workbook.xml.rels"]), ("xl/styles.xml", fixed["xl/styles.xml"])]
    parts += [(sheet_part(i), kept[i] if i in kept else entry(_sheet_xml(s, selected=i == 0)))
              for i, s in enumerate(sheets)]
    package = zip_package(parts, at.astimezone())
    try:
        write_into(path, package)
    except FileNotFoundError:  # its folder is not made yet (most callers made it: a failed mkdir is dearer)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_into(path, package)
