"""Looking up a missing LoRA and downloading it: verified, atomic, cleanly retried."""

from __future__ import annotations

import hashlib

import pytest

from stablenew.community.cache import CommunityCache
from stablenew.community.client import CivitaiClient
from stablenew.community.combos import VersionInfo
from stablenew.community.download import confirmation_text, download_lora, size_words
from stablenew.community.errors import DownloadFailed
from stablenew.community.meta import LoraRef
from stablenew.community.trending import TrendingSource
from tests.fakes.civitai import lora_file


async def test_a_missing_lora_is_looked_up_by_hash_or_version_and_cached(fake_civitai, tmp_path):
    fake_civitai.add_version(555001, "Watercolor", base_model="SD 1.5", autov3="aabbccddeeff")
    nsfw = fake_civitai.add_version(777, "Spicy", nsfw=True)
    source = TrendingSource(CommunityCache(tmp_path / "c"), fake_civitai.url)
    refs = [LoraRef("", 0.8, "", 555001, "civitaiResources"), LoraRef("x", 1, "aabbccddeeff", None, "hashes"),
            LoraRef("spicy", 1, nsfw["files"][0]["hashes"]["SHA256"].lower(), None, "resources"),
            LoraRef("gone", 1, "000000000000", None, "hashes")]
    found, problems = await source.lookup(refs)
    water = found["v:555001"]
    assert (water.name, water.base_model, water.type, water.nsfw) == ("Watercolor", "SD 1.5", "LORA", False)
    assert water.page_url == f"{fake_civitai.url}/models/655001?modelVersionId=555001"
    assert water.size_bytes == 4096 and len(water.sha256) == 64
    assert found["h:aabbccddeeff"].version_id == 555001
    assert found[f"h:{refs[2].hash}"].nsfw is True
    assert problems == ["CivitAI does not know hash 000000000000."]
    asked = len(fake_civitai.requests)
    again, _ = await source.lookup(refs)
    assert set(again) == set(found) and len(fake_civitai.requests) == asked  # from the cache


async def test_a_download_is_verified_and_lands_whole(fake_civitai, tmp_path):
    version = fake_civitai.add_version(9, "Neon", data=lora_file("neon", 300_000))
    info = VersionInfo.from_api(version, fake_civitai.url)
    folder = tmp_path / "Lora"
    assert confirmation_text(info, folder) == (
        f"Download Neon (293 KB) from CivitAI into {folder}? Its sha256 is checked before it is kept.")
    seen = []
    async with CivitaiClient(fake_civitai.url) as client:
        path = await download_lora(client, info, folder, progress=lambda d, t: seen.append((d, t)))
    assert path == folder / "Neon.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
    assert seen[-1] == (300_000, 300_000)
    assert [p.name for p in folder.iterdir()] == ["Neon.safetensors"]
    async with CivitaiClient(fake_civitai.url) as client:
        with pytest.raises(DownloadFailed, match="already in"):
            await download_lora(client, info, folder)


async def test_a_broken_download_is_retried_from_a_clean_start(fake_civitai, tmp_path):
    info = VersionInfo.from_api(fake_civitai.add_version(9, "Neon", data=lora_file("n", 200_000)),
                                fake_civitai.url)
    fake_civitai.drop_downloads = 1
    async with CivitaiClient(fake_civitai.url) as client:
        path = await download_lora(client, info, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
    assert [p.name for p in tmp_path.iterdir()] == ["Neon.safetensors"]
    fake_civitai.drop_downloads = 2
    (tmp_path / "Neon.safetensors").unlink()
    async with CivitaiClient(fake_civitai.url) as client:
        with pytest.raises(DownloadFailed, match="broke off; nothing was kept"):
            await download_lora(client, info, tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_bytes_that_are_not_the_listed_file_are_deleted(fake_civitai, tmp_path):
    info = VersionInfo.from_api(fake_civitai.add_version(9, "Neon"), fake_civitai.url)
    fake_civitai.files[9] = b"tampered" * 100
    async with CivitaiClient(fake_civitai.url) as client:
        with pytest.raises(DownloadFailed, match="checksum differs"):
            await download_lora(client, info, tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_no_hash_or_an_odd_file_name_is_not_downloaded(fake_civitai, tmp_path):
    version = fake_civitai.add_version(9, "Neon", file_name="../../evil.safetensors")
    info = VersionInfo.from_api(version, fake_civitai.url)
    async with CivitaiClient(fake_civitai.url) as client:
        path = await download_lora(client, info, tmp_path)  # the name is reduced to its last part
        assert path == tmp_path / "evil.safetensors"
        odd = VersionInfo.from_api(fake_civitai.add_version(10, "Zip", file_name="x.zip"), fake_civitai.url)
        with pytest.raises(DownloadFailed, match="not offered as a .safetensors"):
            await download_lora(client, odd, tmp_path)
        unhashed = VersionInfo(11, 1, "Bare", download_url=info.download_url, file_name="b.safetensors")
        with pytest.raises(DownloadFailed, match="no sha256"):
            await download_lora(client, unhashed, tmp_path)


def test_sizes_read_as_people_say_them():
    sizes = (800, 150 * 1024 ** 2, int(1.25 * 1024 ** 3))
    assert [size_words(n) for n in sizes] == ["1 KB", "150 MB", "1.2 GB"]
