import os
import threading

import pytest

from pipeline_project.fileops.paths import PathOutsideRoot, claim_unique, confine, safe_name


@pytest.fixture
def root(tmp_path):
    """A staging-like root with a neighbour outside it holding a secret."""
    (tmp_path / "root" / "shots" / "sh010").mkdir(parents=True)
    (tmp_path / "root" / "shots" / "sh010" / "plate.exr").write_bytes(b"plate")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    return tmp_path / "root"


# --- confine ---------------------------------------------------------------------------------
def test_confine_accepts_root_itself_and_nested_paths(root):
    real_root = root.resolve()

    assert confine("", root) == real_root
    assert confine(".", root) == real_root
    assert confine(root, root) == real_root
    assert confine("shots/sh010/plate.exr", root) == real_root / "shots/sh010/plate.exr"
    assert confine(root / "shots" / "sh010", root) == real_root / "shots/sh010"


def test_confine_accepts_paths_that_do_not_exist_yet(root):
    assert confine("shots/sh020/new/comp.exr", root) == root.resolve() / "shots/sh020/new/comp.exr"


def test_confine_resolves_dotdot_that_stays_inside(root):
    assert confine("shots/sh010/../sh010/plate.exr", root) == (
        root.resolve() / "shots/sh010/plate.exr"
    )


@pytest.mark.parametrize(
    "path",
    ["..", "../outside/secret.txt", "shots/../../outside", "shots/sh010/../../../x", "a/../../b"],
)
def test_confine_refuses_dotdot_escapes(root, path):
    with pytest.raises(PathOutsideRoot):
        confine(path, root)


def test_confine_refuses_absolute_paths_outside(root, tmp_path):
    sibling = tmp_path / "root-other" / "file"  # shares the root's name as a prefix

    for path in ["/etc/passwd", tmp_path / "outside" / "secret.txt", sibling, tmp_path]:
        with pytest.raises(PathOutsideRoot):
            confine(path, root)


def test_confine_refuses_file_symlink_pointing_outside(root, tmp_path):
    (root / "shots" / "link.txt").symlink_to(tmp_path / "outside" / "secret.txt")

    with pytest.raises(PathOutsideRoot):
        confine("shots/link.txt", root)


def test_confine_refuses_directory_symlink_pointing_outside_and_below_it(root, tmp_path):
    (root / "shots" / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)

    for path in ["shots/escape", "shots/escape/secret.txt", "shots/escape/not-yet/new.exr"]:
        with pytest.raises(PathOutsideRoot):
            confine(path, root)


def test_confine_refuses_dangling_symlink_pointing_outside(root, tmp_path):
    (root / "dangling").symlink_to(tmp_path / "outside" / "does-not-exist")

    with pytest.raises(PathOutsideRoot):
        confine("dangling", root)
    with pytest.raises(PathOutsideRoot):
        confine("dangling/child", root)


def test_confine_refuses_relative_symlink_climbing_out(root):
    (root / "shots" / "up").symlink_to("../../outside")

    with pytest.raises(PathOutsideRoot):
        confine("shots/up/secret.txt", root)


def test_confine_follows_symlink_that_stays_inside(root):
    (root / "latest").symlink_to("shots/sh010", target_is_directory=True)

    assert confine("latest/plate.exr", root) == root.resolve() / "shots/sh010/plate.exr"


def test_confine_works_with_a_symlinked_root(root, tmp_path):
    (tmp_path / "root-link").symlink_to(root, target_is_directory=True)

    assert confine("shots/sh010/plate.exr", tmp_path / "root-link") == (
        root.resolve() / "shots/sh010/plate.exr"
    )
    with pytest.raises(PathOutsideRoot):
        confine("../outside/secret.txt", tmp_path / "root-link")


def test_confine_refuses_symlink_loops_and_nul_bytes(root):
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")

    with pytest.raises(PathOutsideRoot):
        confine("loop-a/file", root)
    with pytest.raises(PathOutsideRoot):
        confine("shots/\0/x", root)


def test_path_outside_root_names_path_and_root(root):
    with pytest.raises(PathOutsideRoot) as caught:
        confine("../outside/secret.txt", root)

    assert isinstance(caught.value, ValueError)
    assert "../outside/secret.txt" in str(caught.value)
    assert str(root) in str(caught.value)


# --- safe_name -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uploaded", "expected"),
    [
        ("plate.0001.exr", "plate.0001.exr"),
        ("../../etc/passwd", "passwd"),
        ("a\\b.exr", "b.exr"),
        ("C:\\Users\\artist\\comp v2.nk", "comp v2.nk"),
        ("shot\x00010\x1b[31m.exr", "shot010[31m.exr"),
        ("line\nbreak\r\t.txt", "linebreak.txt"),
        ('what<>:"|?*.mov', "what_______.mov"),
        ("  ..hidden.txt", "hidden.txt"),
        ("trailing. . ", "trailing"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # right-to-left override dropped
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("Cafe\u0301.psd", "Caf\u00e9.psd"),  # NFC
    ],
)
def test_safe_name_sanitises(uploaded, expected):
    assert safe_name(uploaded) == expected


@pytest.mark.parametrize("uploaded", ["", ".", "..", "...", ". .", "/", "a/", "dir\\", "\x00\x01"])
def test_safe_name_refuses_names_with_nothing_usable(uploaded):
    with pytest.raises(ValueError, match="name"):
        safe_name(uploaded)


def test_safe_name_caps_long_names_keeping_the_extension():
    name = safe_name("a" * 300 + ".exr")

    assert len(name) == 200
    assert name == "a" * 196 + ".exr"


def test_safe_name_caps_multibyte_names_to_200_bytes():
    name = safe_name("\u00e9" * 300 + ".exr")

    assert name.endswith(".exr")
    assert len(name.encode()) <= 200
    assert name == "\u00e9" * 98 + ".exr"


def test_safe_name_treats_a_huge_extension_as_part_of_the_name():
    name = safe_name("shot." + "x" * 300)

    assert len(name) == 200
    assert name.startswith("shot.")


# --- claim_unique ----------------------------------------------------------------------------
def test_claim_unique_creates_an_empty_file(tmp_path):
    path = claim_unique(tmp_path, "plate.exr")

    assert path == tmp_path / "plate.exr"
    assert path.read_bytes() == b""


def test_claim_unique_never_overwrites_existing_files(tmp_path):
    (tmp_path / "plate.exr").write_bytes(b"first")
    (tmp_path / "plate (1).exr").write_bytes(b"second")

    path = claim_unique(tmp_path, "plate.exr")

    assert path == tmp_path / "plate (2).exr"
    assert (tmp_path / "plate.exr").read_bytes() == b"first"
    assert (tmp_path / "plate (1).exr").read_bytes() == b"second"


def test_claim_unique_numbers_names_without_extension(tmp_path):
    (tmp_path / "README").write_text("x")

    assert claim_unique(tmp_path, "README") == tmp_path / "README (1)"


def test_claim_unique_does_not_write_through_a_symlink(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "plate.exr").symlink_to(tmp_path / "outside" / "target.exr")

    path = claim_unique(tmp_path / "in", "plate.exr")

    assert path == tmp_path / "in" / "plate (1).exr"
    assert not (tmp_path / "outside" / "target.exr").exists()


def test_claim_unique_gives_concurrent_claims_distinct_files(tmp_path):
    count = 24
    barrier = threading.Barrier(count)
    claimed = []

    def claim():
        barrier.wait()
        claimed.append(claim_unique(tmp_path, "upload.mov"))

    threads = [threading.Thread(target=claim) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(claimed)) == count
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in claimed)
    assert tmp_path / "upload.mov" in claimed


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x"])
def test_claim_unique_refuses_names_that_are_not_plain(tmp_path, name):
    with pytest.raises(ValueError):
        claim_unique(tmp_path, name)
