"""The query language's parser: terms, weights, image terms and filters, and where it fails."""

from __future__ import annotations

from datetime import datetime

import pytest

from search.query.language import QueryError, parse


def test_the_parser_reads_weights_images_and_filters():
    query = parse('2:golden retriever + #42 - fruit after:2024-05 path:holidays caption:"on a beach"')
    assert [(t.weight, t.text, t.image_id) for t in query.terms] == [
        (2.0, "golden retriever", None), (1.0, None, 42), (-1.0, "fruit", None)]
    assert query.filters.after == datetime(2024, 5, 1) and query.filters.path == "holidays"
    assert query.filters.caption == ("on a beach",)
    with pytest.raises(QueryError, match="character 8"):
        parse("circle foo:bar")
