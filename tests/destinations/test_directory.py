"""Folder export: paths from templates, atomic and idempotent writes, clear disk errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from service.destinations.kinds import directory, directory_files
from service.destinations.kinds.base import DeliveryError, DeliveryRequest, PermanentFailure
from service.destinations.kinds.directory import (
    DirectoryConfig,
    DirectoryKind,
    export_root_of,
    render_path,
    sanitise,
)
from service.errors import InvalidInput
from tests.destinations.conftest import make_request

# Values of the workout in the name (what the default template was before ``{filename}``).
TITLED = "{account}/{date}_{time}_{discipline}_{title}.{ext}"


def folder(root: Path, template: str | None = TITLED) -> DirectoryKind:
    """A folder destination; ``template=None``: the default one."""
    fields: dict[str, Any] = {"root": str(root)}
    if template is not None:
        fields["template"] = template
    return DirectoryKind(DirectoryConfig.parse(fields))


def read(path: str | Path | None) -> bytes:
    return Path(path or "").read_bytes()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def is_link(path: Path) -> bool:
    return path.is_symlink()


def leftovers(root: Path) -> list[str]:
    """Temporary or probe files anywhere under ``root``."""
    return [p.name for p in root.rglob(".*") if p.is_file()]


async def test_writes_the_file_under_the_default_template(tmp_path: Path) -> None:
    request = make_request(filename="2026-03-01_cycling_30-min-Pop-Ride_w-abc.fit")
    delivered = await folder(tmp_path, None).deliver(request)
    # The file's own name (the one downloads and webhooks give it), in the account's folder.
    expected = tmp_path / "Alex" / "2026-03-01_cycling_30-min-Pop-Ride_w-abc.fit"
    assert delivered.external_id == str(expected)
    assert delivered.response_excerpt == f"wrote {len(request.file.data)} bytes"
    assert read(expected) == request.file.data
    assert expected.stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == []


async def test_every_placeholder(tmp_path: Path) -> None:
    template = (
        "{account_id}-{account}/{date}/{time}/{discipline}/{instructor}/{workout_id}/"
        "{title}.{format}.{ext}"
    )
    request = make_request(fmt="tcx", filename="ride.tcx", instructor=None)
    delivered = await folder(tmp_path, template).deliver(request)
    assert delivered.external_id == str(
        tmp_path / "3-Alex/2026-03-01/0715/cycling/unknown/w-abc/30 min Pop Ride.tcx.tcx"
    )


async def test_same_content_again_is_a_success_without_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = folder(tmp_path)
    first = await kind.deliver(make_request())
    before = os.stat(first.external_id or "")

    def no_replace(*args: object) -> None:
        raise AssertionError("an identical file must not be rewritten")

    monkeypatch.setattr(directory_files.os, "replace", no_replace)
    again = await kind.deliver(make_request(attempt=2))
    assert again.external_id == first.external_id
    assert again.response_excerpt == "already up to date"
    after = os.stat(again.external_id or "")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_new_content_replaces_the_file(tmp_path: Path) -> None:
    kind = folder(tmp_path)
    first = await kind.deliver(make_request(data=b"version one"))
    second = await kind.deliver(make_request(data=b"version two, longer"))
    assert first.external_id == second.external_id
    assert read(second.external_id) == b"version two, longer"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..", "_"),
        ("a/b\\c", "a_b_c"),
        ("tab\there\x00nul\x1f", "tab here_nul"),
        ("  .hidden. ", "hidden"),
        ('what: "a" <b>|c?*', "what_ _a_ _b__c__"),
        ("line\u2028sep\u200bzero\u202ewidth", "line sep_zero_width"),
        ("x" * 200, "x" * 80),
        ("", "_"),
    ],
)
def test_sanitise(value: str, expected: str) -> None:
    assert sanitise(value) == expected


async def test_hostile_values_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "export"
    request = make_request(label="../../..", title="../../../../tmp/evil", discipline="/etc")
    delivered = await folder(root).deliver(request)
    written = Path(delivered.external_id or "")
    assert written.parent == root / "_.._"
    assert written.name == "2026-03-01_0715__etc__.._.._.._tmp_evil.fit"
    assert read(written) == request.file.data
    assert names(tmp_path) == ["export"]


async def test_long_names_fit_the_file_system(tmp_path: Path) -> None:
    title = "長い題名" * 40  # 3 bytes per character: 480 bytes before the cap
    template = "{title}-{title}-{title}-{title}.{ext}"
    delivered = await folder(tmp_path, template).deliver(make_request(title=title))
    name = Path(delivered.external_id or "").name
    assert len(name.encode()) <= 255 and name.endswith(".fit")
    assert read(delivered.external_id) == make_request().file.data


async def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "Alex").symlink_to(outside)
    with pytest.raises(PermanentFailure, match="leaves the folder"):
        await folder(root).deliver(make_request())
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{nope}.{ext}", "unknown placeholder {nope}"),
        ("{title.__class__}.{ext}", "unknown placeholder"),
        ("{title[0]}.{ext}", "unknown placeholder"),
        ("{date:%Y}.{ext}", "takes no format"),
        ("{title!r}.{ext}", "takes no format"),
        ("/etc/{title}.{ext}", "relative path"),
        ("a\\{title}.{ext}", "relative path"),
        ("../{title}.{ext}", "'..' folders"),
        ("{account}/./{title}.{ext}", "'..' folders"),
        ("{title}.fit", "needs {filename}, {ext} or {format}"),
        ("{ext}/", "end with a file name"),
        ("{title", "cannot be parsed"),
    ],
)
def test_bad_templates_are_refused(template: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        DirectoryConfig.parse({"root": "/srv/export", "template": template})


def test_the_root_must_be_absolute() -> None:
    with pytest.raises(InvalidInput, match="absolute path"):
        DirectoryConfig.parse({"root": "exports"})


def test_dots_between_placeholders_are_fine(tmp_path: Path) -> None:
    config = DirectoryConfig.parse({"root": str(tmp_path), "template": "{title}..{ext}"})
    path = render_path(config, make_request())
    assert path == tmp_path / "30 min Pop Ride..fit"


FAILURES = [
    (errno.ENOSPC, "disk full"),
    (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EIO, "Input/output error"),
]


@pytest.mark.parametrize(("code", "what"), FAILURES)
@pytest.mark.parametrize("step", ["replace", "fsync"])
async def test_disk_errors_are_retried_and_leave_nothing_behind(
    code: int, what: str, step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(directory_files.os, step, fail)
    with pytest.raises(DeliveryError) as failed:
        await folder(tmp_path).deliver(make_request())
    target = tmp_path / "Alex" / "2026-03-01_0715_cycling_30 min Pop Ride.fit"
    assert failed.value.message == f"{what} writing {target}"
    assert failed.value.retryable and not isinstance(failed.value, PermanentFailure)
    assert not target.exists()
    assert list((tmp_path / "Alex").iterdir()) == []  # no temporary file either


async def test_a_failed_rewrite_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = folder(tmp_path)
    first = await kind.deliver(make_request(data=b"old"))

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(directory_files.os, "replace", full)
    with pytest.raises(DeliveryError, match="disk full"):
        await kind.deliver(make_request(data=b"new"))
    assert read(first.external_id) == b"old"
    assert leftovers(tmp_path) == []


async def test_folder_creation_errors_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(directory_files.os, "mkdir", read_only)
    with pytest.raises(DeliveryError, match=f"read-only file system creating {tmp_path}/Alex"):
        await folder(tmp_path).deliver(make_request())


async def test_ping_creates_the_folder_and_leaves_no_probe(tmp_path: Path) -> None:
    root = tmp_path / "new" / "export"
    delivered = await folder(root).ping()
    assert root.is_dir()
    assert list(root.iterdir()) == []
    assert delivered.external_id == str(root)


async def test_ping_reports_an_unwritable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(fd: int, data: bytes) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(directory_files, "_write_all", read_only)
    with pytest.raises(DeliveryError, match="read-only file system writing .*pelosync-probe"):
        await folder(tmp_path).ping()
    assert names(tmp_path) == []


async def test_ping_reports_a_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeliveryError, match=f"creating {tmp_path}/file"):
        await folder(tmp_path / "file").ping()


# --- export roots (PELOSYNC_EXPORT_ROOTS) and symlinks swapped in -----------------------------


def test_a_root_outside_the_export_roots_is_named() -> None:
    roots = [Path("/srv/exports"), Path("/data/exports")]
    assert export_root_of(Path("/data/exports/alex"), roots) == (Path("/data/exports"), ("alex",))
    assert export_root_of(Path("/srv/exports"), roots) == (Path("/srv/exports"), ())
    for outside in ("/etc", "/data/exports/../etc", "/data/exportsx", "/"):
        with pytest.raises(InvalidInput, match="outside the folders") as refused:
            export_root_of(Path(outside), roots)
        assert refused.value.status_code == 422


async def test_writes_outside_the_export_roots_are_refused(tmp_path: Path) -> None:
    allowed, other = tmp_path / "exports", tmp_path / "other"
    config = DirectoryConfig.parse({"root": str(other)})
    kind = DirectoryKind(config, export_roots=[allowed])
    with pytest.raises(PermanentFailure, match="outside the folders"):
        await kind.deliver(make_request())
    with pytest.raises(PermanentFailure, match="outside the folders"):
        await kind.ping()
    assert not other.exists()
    inside = DirectoryKind(
        DirectoryConfig.parse({"root": str(allowed / "alex")}), export_roots=[allowed]
    )
    delivered = await inside.deliver(make_request())
    assert read(delivered.external_id) == make_request().file.data
    assert (await inside.ping()).external_id == str(allowed / "alex")


@pytest.mark.parametrize("where", ["root", "template"])
async def test_a_symlink_swapped_in_after_the_check_is_not_followed(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports, outside = tmp_path / "exports", tmp_path / "outside"
    outside.mkdir()
    root = exports / "alex"
    kind = DirectoryKind(DirectoryConfig.parse({"root": str(root)}), export_roots=[exports])
    swapped = root if where == "root" else root / "Alex"
    checked = directory.render_path

    def check_then_swap(config: DirectoryConfig, request: DeliveryRequest) -> Path:
        path = checked(config, request)  # the check passes: no link yet
        swapped.parent.mkdir(parents=True, exist_ok=True)
        swapped.symlink_to(outside)  # ... and an attacker swaps one in
        return path

    monkeypatch.setattr(directory, "render_path", check_then_swap)
    with pytest.raises(PermanentFailure, match="is a symbolic link"):
        await kind.deliver(make_request())
    assert list(outside.iterdir()) == []


async def test_a_symlink_at_the_file_name_is_replaced_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.fit"
    outside.write_bytes(b"precious")
    checked = directory.render_path

    def check_then_swap(config: DirectoryConfig, request: DeliveryRequest) -> Path:
        path = checked(config, request)
        path.parent.mkdir(parents=True)
        path.symlink_to(outside)
        return path

    monkeypatch.setattr(directory, "render_path", check_then_swap)
    delivered = await folder(tmp_path / "export").deliver(make_request())
    target = Path(delivered.external_id or "")
    assert read(outside) == b"precious"
    assert read(target) == make_request().file.data and not is_link(target)
