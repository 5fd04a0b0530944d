"""Training configuration: the documented defaults (bwdp_core/config/train.yaml) <- a user YAML file <- `--set
key=value`.

The result is a plain nested dict (YAML-able, stored in every checkpoint). Keys that are not in the defaults are
rejected with a ConfigError naming the key, except inside the free-form sub-trees listed in ``FREE_FORM`` whose keys
are validated by their consumers (build_sources, loss_config).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from bwdp_core.device import DEVICES
from bwdp_core.errors import ConfigError
from bwdp_core.nets.disp_net import DECODER_NORMS

# sub-trees whose keys belong to another module: data sources (bwdp_core.data.build) and loss fields (LossConfig)
FREE_FORM = {("data", "source"), ("data", "val_source"), ("loss", "overrides"), ("loss", "weights")}


CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"  # package data: train.yaml + bundled recipes
LR_SCHEDULES = ("constant", "cosine")


def default_config_path() -> Path:
    """The documented defaults, shipped as package data: bwdp_core/config/train.yaml."""
    path = CONFIG_DIR / "train.yaml"
    if not path.is_file():
        raise ConfigError(f"default training config not found at {path} (a broken install of bwdp_core)")
    return path


def bundled_configs() -> list[str]:
    """Names of the recipes shipped in bwdp_core/config (``bwdp train --config NAME``), e.g. ``sequence``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "train")


def resolve_config_path(name: str | os.PathLike) -> Path:
    """``--config`` value -> file: an existing path as given, else a bundled recipe by name (``sequence`` or
    ``sequence.yaml`` -> bwdp_core/config/sequence.yaml); ConfigError listing the bundled names otherwise."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if path.parent == Path(".") and bundled.is_file() and bundled.stem != "train":
        return bundled
    raise ConfigError(f"config {name} is neither a file nor a bundled recipe (bundled: "
                      f"{', '.join(bundled_configs()) or 'none'})")


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from ``path``; ConfigError naming the file when it is missing, unparsable or not a mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def merge_into(base: dict, update: dict, prefix: tuple[str, ...] = (), origin: str = "config",
               replace_free_form: bool = True) -> dict:
    """Recursively overwrite ``base`` with ``update`` in place; an unknown key raises ConfigError naming ``origin``.

    A free-form sub-tree (a data source, loss overrides) given as a whole in a file replaces the default one when
    ``replace_free_form`` (so default keys of another source type do not leak in); ``--set`` merges key by key.
    """
    for key, value in update.items():
        path = prefix + (str(key),)
        dotted = ".".join(path)
        if path in FREE_FORM:
            if value is not None and not isinstance(value, (dict, list)):
                raise ConfigError(f"{origin}: {dotted} must be a mapping, got {value!r}")
            if replace_free_form or not isinstance(base.get(key), dict) or not isinstance(value, dict):
                base[key] = copy.deepcopy(value)
            else:
                base[key].update(copy.deepcopy(value))
            continue
        if prefix in FREE_FORM:
            base[key] = copy.deepcopy(value)
            continue
        if key not in base:
            known = ", ".join(sorted(base)) if base else "none"
            raise ConfigError(f"{origin}: unknown key '{dotted}' (known here: {known})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{dotted}' is a section, give its keys (e.g. {dotted}.<key>=...)")
            merge_into(base[key], value, path, origin, replace_free_form)
        else:
            base[key] = copy.deepcopy(value)
    return base


def parse_override(item: str) -> dict:
    """``"a.b.c=value"`` -> ``{"a": {"b": {"c": yaml(value)}}}``."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    dotted, raw = item.split("=", 1)
    keys = [k.strip() for k in dotted.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"--set: bad key '{dotted}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {dotted}: value '{raw}' is not valid YAML") from None
    tree: dict = {keys[-1]: value}
    for key in reversed(keys[:-1]):
        tree = {key: tree}
    return tree


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = (),
                out: str | None = None) -> dict:
    """The full, validated training config: defaults <- file at ``path`` <- each ``--set`` item <- ``out``."""
    cfg = read_yaml(default_config_path())
    if path is not None:
        path = resolve_config_path(path)
        merge_into(cfg, read_yaml(path), origin=str(path))
    for item in overrides:
        # `--set data.source={type: images, ...}` replaces the whole source, `--set data.source.path=...` edits it
        whole = tuple(k.strip() for k in item.split("=", 1)[0].split(".")) in FREE_FORM
        merge_into(cfg, parse_override(item), origin=f"--set {item}", replace_free_form=whole)
    if out is not None:
        cfg["out"] = str(out)
    validate_config(cfg)
    return cfg


def _require(cfg: dict, dotted: str, kind, check=None, hint: str = "") -> Any:
    *parents, last = dotted.split(".")
    section: Any = cfg
    for key in parents:
        section = section[key]
    node = section[last]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(node, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
        try:
            node = section[last] = float(node)
        except ValueError:
            pass
    ok = isinstance(node, kinds) and not (isinstance(node, bool) and bool not in kinds)
    if ok and check is not None:
        ok = check(node)
    if not ok:
        raise ConfigError(f"config key {dotted} = {node!r} is invalid{': ' + hint if hint else ''}")
    return node


def validate_config(cfg: dict) -> None:
    """Types and ranges of every key that the trainer itself uses (sources and loss fields are checked downstream)."""
    def pos(v):
        return v > 0

    def nonneg(v):
        return v >= 0

    _require(cfg, "model.num_layers", int, lambda v: v in (18, 50), "must be 18 or 50")
    _require(cfg, "model.pretrained", (str, type(None)), hint="a path or null")
    _require(cfg, "model.init", (str, type(None)), hint="a bwdp checkpoint path or null")
    _require(cfg, "model.rotation_scale", (int, float), lambda v: v > 0, "a positive number")
    _require(cfg, "model.translation_scale", (int, float), lambda v: v > 0, "a positive number")
    _require(cfg, "model.decoder_norm", str, lambda v: v in DECODER_NORMS, f"one of {', '.join(DECODER_NORMS)}")
    _require(cfg, "loss.preset", str, hint="a preset name")
    _require(cfg, "data.height", int, lambda v: v >= 32 and v % 32 == 0, "a positive multiple of 32")
    _require(cfg, "data.width", int, lambda v: v >= 32 and v % 32 == 0, "a positive multiple of 32")
    _require(cfg, "data.snippet_length", int, lambda v: v >= 3 and v % 2 == 1,
             "odd and at least 3 (target in the middle)")
    _require(cfg, "data.stride", int, pos, "at least 1")
    _require(cfg, "data.augment", bool, hint="true or false")
    _require(cfg, "data.frame_cache_mb", int, lambda v: v >= 0, "non-negative (0 = no cache)")
    _require(cfg, "data.val_fraction", (int, float), lambda v: 0 <= v < 1, "in [0, 1)")
    for name in ("source", "val_source"):
        src = cfg["data"][name]
        if src is None and name == "val_source":
            continue
        if not (isinstance(src, dict) and (src.get("type") or src.get("sources"))) \
                and not (isinstance(src, list) and src):
            raise ConfigError(f"config key data.{name} must be a source mapping with a 'type' (or a list of them), "
                              f"got {src!r} (see bwdp_core/config/train.yaml)")
        if isinstance(src, dict) and "path" in src and src["path"] in (None, ""):
            raise ConfigError(f"config key data.{name}.path is not set (the folder, video or bag to train on)")
    _require(cfg, "train.batch", int, pos, "at least 1")
    _require(cfg, "train.lr", (int, float), pos, "a positive number")
    _require(cfg, "train.betas", list, lambda v: len(v) == 2 and all(isinstance(b, (int, float)) for b in v),
             "two numbers")
    _require(cfg, "train.weight_decay", (int, float), nonneg, "non-negative")
    _require(cfg, "train.lr_schedule", str, lambda v: v in LR_SCHEDULES, " or ".join(LR_SCHEDULES))
    _require(cfg, "train.warmup_steps", int, nonneg, "non-negative")
    _require(cfg, "train.smoothness_warmup_steps", int, nonneg, "non-negative (0 = no ramp)")
    _require(cfg, "train.final_lr_factor", (int, float), lambda v: 0 <= v <= 1, "in [0, 1]")
    _require(cfg, "train.iterations", int, pos, "at least 1")
    _require(cfg, "train.workers", int, nonneg, "non-negative")
    _require(cfg, "train.seed", int, nonneg, "a non-negative integer")
    for key in ("log_every", "ckpt_every"):
        _require(cfg, f"train.{key}", int, pos, "at least 1")
    for key in ("image_every", "val_every", "val_batches", "threads", "collapse_window"):
        _require(cfg, f"train.{key}", int, nonneg, "non-negative (0 = off/default)")
    _require(cfg, "train.amp", bool, hint="true or false")
    _require(cfg, "train.channels_last", bool, hint="true or false")
    _require(cfg, "train.device", str, lambda v: v in DEVICES,
             f"{', '.join(DEVICES[:-1])} or {DEVICES[-1]}")
    _require(cfg, "train.grad_clip", (int, float), nonneg, "non-negative")
    _require(cfg, "out", str, lambda v: bool(v.strip()), "an output folder")


def dump_config(cfg: dict) -> str:
    """The config as YAML text (what is written to OUT/config.yaml)."""
    return yaml.safe_dump(cfg, sort_keys=False)
