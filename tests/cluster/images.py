"""The project's images for the node tier, built here from ``images/*.Dockerfile`` with buildah and no registry.

- The Dockerfiles' public base, ``python:3.12-slim``, is stood in for by Debian trixie (minbase + python3, Python
  3.13: the same minor or newer) made by debootstrap and tagged with the base's name in a *private* buildah store
  (``<cache>/images/storage``): nothing is pulled, nothing is pushed, the host's image stores are not touched.
- The dependencies are the pins of ``images/constraints.txt``, as wheels for the base's Python fetched once on the
  host (``pip download``) into a build context staged here; the Dockerfiles install them with ``--no-index``.
- Each image is kept as a docker archive named by the hash of its inputs (the Dockerfile, every file it copies,
  the wheels, the base): it is rebuilt only when one of them changes. :mod:`tests.cluster.node` imports the archives
  into containerd.

    python -m tests.cluster.images          # build (or find) the images; print their references and archives
    python -m tests.cluster.images --lock   # rewrite images/constraints.txt from pyproject.toml's ranges
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from tests.cluster import builds, errors, prerequisites

logger = logging.getLogger(__name__)

REPO = builds.HERE.parent.parent
DOCKERFILES = {"operator": REPO / "images" / "operator.Dockerfile", "worker": REPO / "images" / "worker.Dockerfile"}
CONSTRAINTS = REPO / "images" / "constraints.txt"
PUBLIC_BASE = "docker.io/library/python:3.12-slim"
"""What the Dockerfiles say ``FROM``; the stand-in carries this name inside the private store only."""
BASE_SUITE = "trixie"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3")
BASE_MIRROR = "http://deb.debian.org/debian"
BASE_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale", "dev")
REPOSITORY = "docker.io/workpath"
REBUILD_REPOSITORY = "localhost/workpath-rebuild"
"""Where :meth:`Builder.rebuild` tags its scratch builds: outside :data:`REPOSITORY`, which ``_forget_old`` prunes."""
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
PIP_OPTIONS = "--no-index --find-links images/wheels"
BUILD_TIMEOUT = 900.0
SOURCE_DATE_EPOCH = 0
"""The build's notion of "now" for the tools that honour it (pip's byte-compiling, useradd)."""


class ImageBuildError(errors.ClusterError):
    """An image (or its base, or its wheels) could not be built; the message has the tail of the tool's output."""


@dataclasses.dataclass(frozen=True)
class Image:
    """One built image: its reference (as the kubelet will ask containerd for it) and its docker archive."""

    name: str
    reference: str
    archive: pathlib.Path

    @property
    def repository(self) -> str:
        return self.reference.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.reference.rpartition(":")[2]


@dataclasses.dataclass(frozen=True)
class BaseImage:
    """The stand-in base in the private store, and the Python version the wheels must fit."""

    image_id: str
    python: str
    """``major.minor``, e.g. ``3.13``."""


class Builder:
    """Builds the images into ``<cache>/images``; ``milestones`` says how long each step took (for the report)."""

    def __init__(self, *, root: pathlib.Path | None = None) -> None:
        self.root = root or builds.cache_dir() / "images"
        self.milestones: dict[str, float] = {}

    def ensure(self, names: Sequence[str] = tuple(DOCKERFILES)) -> dict[str, Image]:
        """Every image in ``names``, built unless an archive of the same inputs exists."""
        prerequisites.require_commands("buildah", "debootstrap", why="the node tier builds its images with them")
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        base = self._base()
        wheels = self._wheels(python=base.python)
        with tempfile.TemporaryDirectory(prefix="context-", dir=self.root) as context_dir:
            context = _stage_context(pathlib.Path(context_dir), wheels=wheels)
            images = {name: self._image(name, context=context, base=base) for name in names}
        self._forget_old(list(images.values()))
        self.milestones["images ready"] = time.monotonic() - started
        return images

    # -- the base ------------------------------------------------------------------------------------------------

    def _base(self) -> BaseImage:
        key_file = self.root / "base.json"
        key = _digest(json.dumps([BASE_SUITE, BASE_PACKAGES, BASE_MIRROR]).encode())
        try:
            recorded = json.loads(key_file.read_text())
        except (FileNotFoundError, ValueError):
            recorded = {}
        image_id = self.image_id(PUBLIC_BASE)
        if recorded.get("key") == key and image_id is not None and image_id == recorded.get("id"):
            return BaseImage(image_id=image_id, python=recorded["python"])
        started = time.monotonic()
        logger.info("Building the stand-in base image (debootstrap %s; about a minute and a half) ...", BASE_SUITE)
        with tempfile.TemporaryDirectory(prefix="base-", dir=self.root) as work:
            rootfs = pathlib.Path(work) / "rootfs"
            _run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", BASE_SUITE, rootfs,
                 BASE_MIRROR],
                what="debootstrap of the stand-in base",
            )  # fmt: skip
            python = _run(
                ["chroot", rootfs, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                what="python3 in the base",
            ).strip()
            for trimmed in BASE_TRIM:
                shutil.rmtree(rootfs / trimmed, ignore_errors=True)
            (rootfs / "dev").mkdir()
            tarball = pathlib.Path(work) / "rootfs.tar"
            _run(["tar", "--numeric-owner", "--sort=name", "--mtime=@0", "-C", rootfs, "-cf", tarball, "."],
                 what="packing the base")  # fmt: skip
            container = self._buildah("from", "scratch").strip()
            try:
                self._buildah("add", container, str(tarball), "/")
                self._buildah("config", "--cmd", "python3", "--env", "LANG=C.UTF-8", container)
                image_id = self._buildah("commit", "--timestamp", "0", "--rm", container, PUBLIC_BASE).strip()
            except BaseException:
                self._buildah("rm", container, check=False)
                raise
        key_file.write_text(json.dumps({"key": key, "id": image_id, "python": python}))
        self.milestones["base image built"] = time.monotonic() - started
        return BaseImage(image_id=image_id, python=python)

    # -- the wheels ----------------------------------------------------------------------------------------------

    def _wheels(self, *, python: str) -> pathlib.Path:
        """Wheels of every pin in images/constraints.txt for ``python`` (manylinux x86_64), fetched once."""
        key = _digest(CONSTRAINTS.read_bytes() + python.encode() + " ".join(WHEEL_PLATFORMS).encode())
        wheels = self.root / f"wheels-{key[:16]}"
        if (wheels / ".complete").exists():
            return wheels
        started = time.monotonic()
        shutil.rmtree(wheels, ignore_errors=True)
        digits = python.replace(".", "")
        platforms = [option for platform in WHEEL_PLATFORMS for option in ("--platform", platform)]
        _run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", f"--python-version={python}", "--implementation=cp", f"--abi=cp{digits}",
             *platforms, "--requirement", CONSTRAINTS, "--dest", wheels],
            what=f"pip download of the wheels of {CONSTRAINTS.name} for Python {python}",
        )  # fmt: skip
        (wheels / ".complete").touch()
        self.milestones["wheels fetched"] = time.monotonic() - started
        return wheels

    # -- the images ----------------------------------------------------------------------------------------------

    def _image(self, name: str, *, context: pathlib.Path, base: BaseImage) -> Image:
        dockerfile = context / DOCKERFILES[name].relative_to(REPO)
        inputs = _hash_inputs(context, dockerfile) + base.image_id
        tag = f"test-{_digest(inputs.encode())[:16]}"
        image = Image(name=name, reference=f"{REPOSITORY}/{name}:{tag}", archive=self.root / f"{name}-{tag}.tar")
        if image.archive.exists():
            return image
        started = time.monotonic()
        logger.info("Building image %s from %s ...", image.reference, DOCKERFILES[name].name)
        self._bud(name, context=context, reference=image.reference)
        partial = image.archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self._buildah("push", "--quiet", image.reference, f"docker-archive:{partial}:{image.reference}")
        partial.replace(image.archive)
        self.milestones[f"{name} image built"] = time.monotonic() - started
        return image

    def _bud(self, name: str, *, context: pathlib.Path, reference: str) -> None:
        """``buildah bud`` of image ``name``: no pull, no cache, every timestamp at 0 (the image's ``created`` and
        the mtime of every file in its layers), so that the same inputs give the same image ID.

        What the build's own commands record is up to the Dockerfile: pip's .pyc files keep the install time of
        their sources and useradd's /etc/shadow the day, unless ``SOURCE_DATE_EPOCH`` is set (then pip writes
        hash-based .pyc files and useradd that day): :data:`SOURCE_DATE_EPOCH` is passed for an
        ``ARG SOURCE_DATE_EPOCH`` in each stage (buildah 1.28's ``--env`` reaches no RUN of an earlier stage).
        """
        dockerfile = context / DOCKERFILES[name].relative_to(REPO)
        self._buildah(
            "bud", "--isolation=chroot", "--network=host", "--pull=never", "--timestamp=0", "--layers=false",
            f"--build-arg=PIP_INSTALL_OPTIONS={PIP_OPTIONS}", f"--build-arg=SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}",
            "--file", str(dockerfile), "--tag", reference, str(context),
        )  # fmt: skip

    def rebuild(self, name: str) -> str:
        """Build image ``name`` again from the same inputs (base, wheels, context) under a scratch reference, remove
        it, and return its image ID: the reproducibility check compares it with :meth:`image_id` of the cached one.
        """
        base = self._base()
        wheels = self._wheels(python=base.python)
        reference = f"{REBUILD_REPOSITORY}/{name}:{os.getpid()}"
        with tempfile.TemporaryDirectory(prefix="context-", dir=self.root) as context_dir:
            context = _stage_context(pathlib.Path(context_dir), wheels=wheels)
            try:
                self._bud(name, context=context, reference=reference)
                image_id = self.image_id(reference)
            finally:
                self._buildah("rmi", "--force", reference, check=False)
        if image_id is None:
            raise ImageBuildError(f"buildah built {reference} but does not list it")
        return image_id

    def _forget_old(self, current: Sequence[Image]) -> None:
        """Remove the archives and store entries of earlier inputs (the cache keeps one version of each image)."""
        kept = {image.archive for image in current}
        references = {image.reference for image in current}
        for image in current:  # Only the names just ensured: ensure(["worker"]) keeps the operator's build.
            for archive in self.root.glob(f"{image.name}-test-*.tar"):
                if archive not in kept:
                    archive.unlink(missing_ok=True)
        self._buildah("rmi", "--prune", check=False)  # Dangling: an earlier base, intermediate stages.
        listed = self._buildah("images", "--format", "{{.Name}}:{{.Tag}}", check=False)
        for reference in listed.split():
            ours = any(reference.startswith(f"{image.repository}:") for image in current)
            if ours and reference not in references:
                self._buildah("rmi", "--force", reference, check=False)

    def pause(self, binary: pathlib.Path) -> Image:
        """The pod sandbox image: the pause binary built by build.sh, alone in an image (no registry.k8s.io)."""
        tag = f"test-{_digest(binary.read_bytes())[:16]}"
        image = Image(name="pause", reference=f"{REPOSITORY}/pause:{tag}", archive=self.root / f"pause-{tag}.tar")
        if image.archive.exists():
            return image
        self.root.mkdir(parents=True, exist_ok=True)
        container = self._buildah("from", "scratch").strip()
        try:
            self._buildah("copy", container, str(binary), "/pause")
            self._buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container)
            self._buildah("commit", "--timestamp", "0", "--rm", container, image.reference)
        except BaseException:
            self._buildah("rm", container, check=False)
            raise
        partial = image.archive.with_suffix(".partial")
        self._buildah("push", "--quiet", image.reference, f"docker-archive:{partial}:{image.reference}")
        partial.replace(image.archive)
        for archive in self.root.glob("pause-test-*.tar"):
            if archive != image.archive:
                archive.unlink(missing_ok=True)
        return image

    # -- buildah in the private store ----------------------------------------------------------------------------

    def image_id(self, reference: str) -> str | None:
        """The ID (the digest of the config, which names every layer) of ``reference`` in the store, or None."""
        found = self._buildah("images", "--quiet", "--no-trunc", reference, check=False).split()
        return found[0].removeprefix("sha256:") if found else None

    def _buildah(self, *args: str, check: bool = True) -> str:
        storage = [
            f"--root={self.root / 'storage'}",
            f"--runroot={self.root / 'run'}",
            "--storage-driver=overlay",
        ]
        return _run(["buildah", *storage, *args], what=f"buildah {args[0]}", check=check, env=self._env())

    def _env(self) -> dict[str, str]:
        temporary = self.root / "tmp"
        temporary.mkdir(exist_ok=True)
        return os.environ | {"TMPDIR": str(temporary), "BUILDAH_ISOLATION": "chroot"}


def _stage_context(context: pathlib.Path, *, wheels: pathlib.Path) -> pathlib.Path:
    """A build context with what the Dockerfiles copy (as in the repository), plus the wheels in images/wheels."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.whl")
    for name in (".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, context / name)
    for name in ("worker", "operator", "examples", "images"):
        shutil.copytree(REPO / name, context / name, ignore=ignore)
    for wheel in wheels.glob("*.whl"):
        os.link(wheel, context / "images" / "wheels" / wheel.name)
    return context


_COPY = re.compile(r"^COPY\s+(?!--from)(.+)$", re.MULTILINE)


def _hash_inputs(context: pathlib.Path, dockerfile: pathlib.Path) -> str:
    """The digest of the Dockerfile and of every file under the paths its COPY instructions name."""
    text = dockerfile.read_text()
    sources = sorted({source for match in _COPY.finditer(text) for source in match.group(1).split()[:-1]})
    digest = hashlib.sha256(text.encode())
    for source in sources:
        root = context / source
        files = sorted(path for path in ([root] if root.is_file() else root.rglob("*")) if path.is_file())
        for path in files:
            digest.update(str(path.relative_to(context)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(
    argv: Sequence[str | os.PathLike[str]], *, what: str, check: bool = True, env: dict[str, str] | None = None
) -> str:
    done = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, env=env
    )
    if check and done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise ImageBuildError(f"{what} failed with code {done.returncode}:\n" + "\n".join(output[-40:]))
    return done.stdout


def lock() -> None:
    """Rewrite images/constraints.txt: what pip resolves today for the images' extras, for the base's Python."""
    report = CONSTRAINTS.with_suffix(".report.json")
    header = [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]
    try:
        _run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--report", report,
             "--only-binary=:all:", "--python-version=3.13", "--target", tempfile.gettempdir(),
             f"{REPO}[operator,speed]", "setuptools>=69", "wheel"],
            what="pip's resolver",
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    finally:
        report.unlink(missing_ok=True)
    pins = sorted(
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installs
        if item["metadata"]["name"] != "workpath"
    )
    CONSTRAINTS.write_text("\n".join([*header, *sorted(pins, key=str.lower)]) + "\n")


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if "--lock" in argv:
        lock()
        return 0
    builder = Builder()
    for image in builder.ensure().values():
        print(image.reference, image.archive)
    print(", ".join(f"{step} {seconds:.1f} s" for step, seconds in builder.milestones.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
