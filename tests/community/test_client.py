"""The CivitAI client and the trending cache against the fake CivitAI over real HTTP."""

from __future__ import annotations

import time

import pytest

from stablenew.community.cache import CommunityCache
from stablenew.community.client import CivitaiClient, ImageQuery, Period, Sort
from stablenew.community.errors import CivitaiBusy, CivitaiError, CivitaiRejected, CivitaiUnreachable
from stablenew.community.trending import TrendingSource
from tests.fakes.civitai import item, wild_items


def _many(fake, count):
    return [item(i, fake, meta={"prompt": f"image {i}, <lora:neon:0.5>"}, reactions=count - i)
            for i in range(1, count + 1)]


async def test_every_request_sends_limit_and_with_meta_and_pages_by_cursor(fake_civitai):
    fake_civitai.items = _many(fake_civitai, 450)
    async with CivitaiClient(fake_civitai.url) as client:
        items = await client.fetch_images(ImageQuery(Sort.most_comments, Period.month, limit=200), 450)
    assert [i["id"] for i in items] == [i["id"] for i in fake_civitai.items]  # all, in order, once
    seen = fake_civitai.image_requests()
    assert len(seen) == 3
    for request in seen:
        assert request.query["limit"] == "200" and request.query["withMeta"] == "true"
        assert (request.query["sort"], request.query["period"]) == ("Most Comments", "Month")
        assert request.query["browsingLevel"] == "1" and request.query["nsfw"] == "None"
        assert "page" not in request.query
    assert "cursor" not in seen[0].query and seen[1].query["cursor"] == "200|1733400000000"
    assert all(i["meta"] is not None for i in items)


async def test_more_than_the_site_pages_by_number_is_fetched_by_cursor(fake_civitai):
    fake_civitai.items = _many(fake_civitai, 1250)  # page × limit past 1000 is refused by the site
    async with CivitaiClient(fake_civitai.url) as client:
        items = await client.fetch_images(ImageQuery(limit=200), 1200)
    assert len(items) == 1200 and len({i["id"] for i in items}) == 1200


async def test_without_with_meta_the_fake_sends_null_meta_as_the_site_does(fake_civitai):
    fake_civitai.items = _many(fake_civitai, 2)
    async with CivitaiClient(fake_civitai.url) as client:
        data = await client.get_json("/api/v1/images", [("limit", "2"), ("withMeta", "1")])
        assert [i["meta"] for i in data["items"]] == [None, None]
        with pytest.raises(CivitaiRejected) as refused:
            await client.get_json("/api/v1/images", [("limit", "300")])
        assert refused.value.status == 400


async def test_busy_answers_are_waited_out_for_their_retry_after(fake_civitai):
    fake_civitai.items = _many(fake_civitai, 3)
    fake_civitai.busy(429, "1")
    fake_civitai.busy(503, "1")
    waits = []

    async def sleep(seconds):  # records the wait; the retry itself is real HTTP
        waits.append(seconds)

    async with CivitaiClient(fake_civitai.url, sleep=sleep) as client:
        page = await client.images(ImageQuery(limit=3))
    assert len(page.items) == 3 and waits == [1.0, 1.0]
    assert len(fake_civitai.image_requests()) == 3


async def test_a_long_retry_after_is_said_in_words_not_waited(fake_civitai):
    fake_civitai.busy(429, "600")
    started = time.monotonic()
    async with CivitaiClient(fake_civitai.url) as client:
        with pytest.raises(CivitaiBusy) as busy:
            await client.images(ImageQuery(limit=3))
    assert time.monotonic() - started < 5
    assert busy.value.retry_after == 600
    assert "asks to wait 10 seconds" not in busy.value.message
    assert "about 10 minutes" in busy.value.message


async def test_the_api_key_goes_in_the_header_only(fake_civitai):
    fake_civitai.api_key = "sekrit-key"
    fake_civitai.items = _many(fake_civitai, 1)
    async with CivitaiClient(fake_civitai.url, api_key="sekrit-key") as client:
        assert len((await client.images(ImageQuery(limit=1))).items) == 1
        assert "sekrit" not in repr(client)
    request = fake_civitai.image_requests()[0]
    assert request.authorization == "Bearer sekrit-key"
    assert all("sekrit" not in value for value in request.query.values())
    async with CivitaiClient(fake_civitai.url, api_key="wrong") as client:
        with pytest.raises(CivitaiRejected, match="refused the API key"):
            await client.images(ImageQuery(limit=1))


async def test_a_huge_answer_is_refused_as_it_arrives(fake_civitai):
    fake_civitai.items = [item(i, fake_civitai, meta={"prompt": "word " * 2000}) for i in range(200)]
    async with CivitaiClient(fake_civitai.url, max_body=500_000) as client:
        with pytest.raises(CivitaiError, match="far larger than expected"):
            await client.images(ImageQuery(limit=200))
    async with CivitaiClient(fake_civitai.url) as client:  # the same huge page within the cap
        assert len((await client.images(ImageQuery(limit=200))).items) == 200


async def test_trending_is_cached_and_served_offline_saying_how_old(fake_civitai, tmp_path, dead_url):
    fake_civitai.items = wild_items(fake_civitai, neon_hash="0123456789ab", detail_hash="ba9876543210")
    cache = CommunityCache(tmp_path / "community")
    source = TrendingSource(cache, fake_civitai.url)
    query = ImageQuery(limit=50)
    first = await source.fetch(query, 50)
    assert not first.from_cache and len(first.images) == 8  # the R-rated one was not sent
    assert first.status().startswith("8 images fetched just now")
    again = await source.fetch(query, 50)
    assert again.from_cache and len(fake_civitai.image_requests()) == 1  # fresh: no request

    # An hour later the site is gone: the stored answer serves, and says how old it is.
    stored = cache.get(source._key(query, 50))
    cache.put(source._key(query, 50), stored.data, now=time.time() - 3 * 3600 - 5)
    offline = TrendingSource(cache, fake_civitai.url, ttl=3600)
    offline._client = lambda: CivitaiClient(dead_url)
    result = await offline.fetch(query, 50)
    assert result.from_cache and len(result.images) == 8
    assert "cannot be reached" in result.status() and "fetched 3 hours ago" in result.status()
    with pytest.raises(CivitaiUnreachable):
        await offline.fetch(ImageQuery(limit=10), 10)  # nothing stored for this question


async def test_the_key_is_not_in_the_cache(fake_civitai, tmp_path):
    fake_civitai.items = _many(fake_civitai, 2)
    cache = CommunityCache(tmp_path / "community")
    await TrendingSource(cache, fake_civitai.url, api_key="sekrit-key").fetch(ImageQuery(limit=2), 2)
    files = list((tmp_path / "community").rglob("*"))
    assert files and all("sekrit" not in f.read_text() for f in files if f.is_file())


async def test_thumbnails_are_fetched_small_once_and_kept(fake_civitai, tmp_path):
    cache = CommunityCache(tmp_path / "community")
    source = TrendingSource(cache, fake_civitai.url)
    path = await source.thumbnail(fake_civitai.image_url(7))
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    assert await source.thumbnail(fake_civitai.image_url(7)) == path
    files = [r for r in fake_civitai.requests if not r.path.startswith("/api/")]
    assert len(files) == 1 and "/width=320/" in files[0].path


async def test_a_huge_page_is_refused_in_plain_words_not_read_into_memory(fake_civitai):
    # A page whose prompts run to megabytes (what a broken mirror or a runaway item sends).
    fake_civitai.items = [item(i, fake_civitai, meta={"prompt": "masterpiece, " * 40_000})
                          for i in range(1, 6)]
    async with CivitaiClient(fake_civitai.url, max_body=1_000_000) as client:
        with pytest.raises(CivitaiError, match="far larger than expected, so it was refused"):
            await client.fetch_images(ImageQuery(limit=5), 5)
    # The same page under a cap it fits is read whole.
    async with CivitaiClient(fake_civitai.url, max_body=8_000_000) as client:
        assert len(await client.fetch_images(ImageQuery(limit=5), 5)) == 5
