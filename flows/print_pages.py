"""The printable pages of a refresh, one per worker book, each rendered only when publish asks for it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial

import numpy as np
import polars as pl

from flows.publish import PrintPage
from transforms.print_sheet import WORKER, page_bodies, page_digest, page_html, person_lines, row_digests
from transforms.sheets import walk_positions

# Communities whose pages are rendered together: one query for each of a 20M city's 11,070 communities cost
# more than the rendering. Consecutive communities up to this many call-list rows are one query, and one such
# block's lines are held at a time.
PAGE_BLOCK_ROWS = 100_000


def print_pages(call_list: pl.DataFrame, books: list, as_of_text: str, walk: pl.Series | None = None
                ) -> Iterator[PrintPage]:
    """One printable page per worker book, rows in walking order, each with its digest; a page is rendered
    only when asked (publish renders the ones whose digest changed), a block of communities at a time, so
    neither a city's pages nor its rendered lines are ever in memory at once. The walking order is kept as
    the rows' positions, not as a sorted copy of the call list held beside it until the last page.
    walk: transforms.sheets.walk_positions of the call list, if the caller has them (the books' sheets do)."""
    # Positions by worker and then walking order: a community's rows are one span of them, a worker's a
    # span of that.
    order = walk_positions(call_list) if walk is None else walk
    digests = row_digests(call_list).gather(order)
    keys = call_list.select(WORKER).with_columns(pl.all().gather(order))

    def spans(keys: pl.DataFrame, by: list[str]) -> dict[tuple, tuple[int, int]]:
        return {tuple(key): (start, n) for *key, start, n in keys.select(by).with_row_index("_at").group_by(
            by, maintain_order=True).agg(pl.col("_at").first(), pl.len()).iter_rows()}

    workers = spans(keys, WORKER)
    block_of, blocks = {}, []  # community -> its block; each block's (start, rows)
    for community, (start, n) in spans(keys, WORKER[:2]).items():
        if not blocks or blocks[-1][1] >= PAGE_BLOCK_ROWS:
            blocks.append((start, 0))
        blocks[-1] = (blocks[-1][0], start + n - blocks[-1][0])
        block_of[community] = len(blocks) - 1
    del keys

    def bodies_of(block: int | None, wanted: Iterable[tuple[str, str, str]] | None = None
                  ) -> dict[tuple[str, str, str], tuple[bytes, int]]:
        """A block's page bodies (UTF-8) and people by worker: of the workers wanted (street, community,
        grid_worker), else of all; a worker's page is made of their rows alone, so at a refresh that changed
        two fifths of the pages the rest are not rendered. Reads nothing that changes, so a thread of the
        writer's may make the next block's while this one's pages are written."""
        if block is None:
            rows = call_list.clear()
        elif wanted is None:
            rows = call_list[order.slice(*blocks[block])]
        else:
            mine = sorted(workers[key] for key in set(wanted) if key in workers)
            at = (np.concatenate([np.arange(start, start + n) for start, n in mine]) if mine
                  else np.zeros(0, dtype=np.int64))
            rows = call_list[order.gather(at)]
        bodies = page_bodies(person_lines(rows))
        return dict(zip(zip(*(bodies[c].to_list() for c in WORKER), strict=True),
                        zip(bodies["body"].cast(pl.Binary).to_list(), bodies["people"].to_list(), strict=True),
                        strict=True))

    def render(book, block: int | None, bodies: dict | None = None) -> bytes:
        """The page; its own body is made for it alone when not given (publish gives its block's)."""
        key = (book.street, book.community, book.grid_worker)
        bodies = bodies_of(block, [key]) if bodies is None else bodies
        body, people = bodies.get(key, (b"", 0))
        return page_html(body, people, street=book.street, community=book.community, grid_worker=book.grid_worker,
                         grids="、".join(book.grid_ids), as_of_text=as_of_text)

    for book in books:
        key = (book.street, book.community, book.grid_worker)
        mine = digests.slice(*workers.get(key, (0, 0)))
        digest = page_digest(mine, street=book.street, community=book.community, grid_worker=book.grid_worker,
                             grids="、".join(book.grid_ids))
        block = block_of.get((book.street, book.community))
        yield PrintPage((book.street, book.community, book.file_name.removesuffix(".xlsx") + ".html"), digest,
                        partial(render, book, block), block, partial(bodies_of, block), key)
