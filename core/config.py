"""One typed settings object for the whole service.

Sources, later ones win: embedded defaults, `unlearnd.toml` (path from `--config` or
`UNLEARND_CONFIG`, else `./unlearnd.toml` when present), then `UNLEARND_*` environment
variables. Nested keys use a double underscore: `UNLEARND_DAEMON__LEASE_S=600` sets
`[daemon] lease_s`. Unknown keys and bad values are errors that name the key. An `UNLEARND_*`
name that is no setting (`UNLEARND_BIN`, `UNLEARND_HOME`: other tools' variables) is ignored
with one warning naming it; one inside a section (`UNLEARND_DAEMON__LEASE`) is a misspelt key,
an error naming the variable and the closest key. Names starting `UNLEARND_TEST_` belong to
the test suite and are not settings.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "UNLEARND_"
RESERVED_ENV = ("UNLEARND_CONFIG", "UNLEARND_TEST_")  # not settings: the file path, test hooks
DEFAULT_CONFIG_NAME = "unlearnd.toml"
log = logging.getLogger("unlearnd.config")


class ConfigError(ValueError):
    """A config file or environment variable is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(_Section):
    path: str = ""  # local Hugging Face folder of the served model; "" = the demo world model
    family: Literal["auto", "llava", "qwen2_vl", "clip", "causal_lm"] = "auto"
    # JSONL files of {"image": path relative to the file, "question", "answer"}: what a
    # deletion must not damage, and general ability ("" = none).
    retain_pool: str = ""
    general_pool: str = ""
    # JSONL of per-target probes {"target", "probe", "question", "answer" (the fact),
    # "image", optional "facts"}: the deployment's ways to ask for a forgotten fact ("" = none).
    probe_sets: str = ""
    eval_samples: int = Field(48, ge=1)  # per pool, when evaluating a candidate


MODEL_PATHS = ("path", "retain_pool", "general_pool", "probe_sets")  # relative to the file


class LimitSettings(_Section):
    max_request_bytes: int = Field(1_000_000, gt=0)
    max_bundle_bytes: int = Field(200_000_000, gt=0)
    max_bundle_members: int = Field(2_000, gt=0)
    max_image_bytes: int = Field(20_000_000, gt=0)
    max_image_pixels: int = Field(16_000_000, gt=0)
    max_samples: int = Field(10_000, gt=0)


class DaemonSettings(_Section):
    rescan_interval_s: float = Field(10.0, gt=0)
    # looks with unchanged size and mtime before a file dropped straight into new/ is taken
    stable_checks: int = Field(2, ge=1)
    stable_interval_s: float = Field(0.2, ge=0)
    polling_observer: bool = False  # for network file systems, where inotify sees nothing
    lease_s: float = Field(300.0, gt=0)
    heartbeat_s: float = Field(15.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    reap_interval_s: float = Field(30.0, gt=0)
    gc_interval_s: float = Field(3600.0, gt=0)
    reevaluate_interval_s: float = Field(0.0, ge=0)  # 0 = off
    default_method: str = "refuser"  # CORE-style refuser experts (ARCHITECTURE.md)


class RoutingSettings(_Section):
    pool_size: int = Field(20, ge=1)
    reuse_threshold: float = Field(0.5, ge=0, le=1)
    # Reuse of an expert (routing/pool.py): r = sigmoid(a * (cos_visual * cos_textual - b))
    # between two requests. CORE's b is 0.05 on its encoders; on the world model's centred
    # features two requests about one person score >= 0.91, other people 0.76 on average for
    # the closest three; 0.85 keeps the first apart from most of the rest. Also the image
    # door's threshold of requests routed before thresholds were calibrated.
    relevance_a: float = 100.0
    relevance_b: float = 0.85
    # The image door's threshold (routing/switch.py): a cosine fixed for every request, or
    # None to calibrate one per request on its images against the retain and general pools.
    visual_threshold: float | None = Field(None, ge=-1, le=1)
    # The text door: a question naming a forgotten target (or an alias) turns its expert on.
    text_door: bool = True
    # What a query that turns an expert on is answered with: the expert's own generation
    # (CORE), or the deployment's refusal for the question's category (`[refusals]`), which
    # is always a well-formed member of the refusal set and states nothing.
    routed_answer: Literal["generate", "refusal"] = "generate"
    gate: Literal["continuous", "hard"] = "continuous"
    hard_threshold: float = Field(0.5, ge=0, le=1)
    prototypes: int = Field(4, ge=1)
    # What an image's concept vector is (routing/concepts.py): the pooled vision-tower
    # features, or the language model's state where its answer starts (object classes drawn
    # in many styles: bench/pacs.py). Changing it needs a deployment without routed requests.
    visual_vector: Literal["vision_tower", "answer_distribution"] = "vision_tower"
    # The text door's key of a question (routing/text_door.py): the prompt's middle-block
    # state (a chat model's first answer token says little), or the first-token answer
    # distribution (fewer namesakes refused on a model whose answers start with the name).
    # New requests only: each stored door keeps the key it was built on.
    text_key: Literal["prompt_state", "answer_distribution"] = "prompt_state"
    # The text door by meaning (routing/text_door.py): a key of each question against the
    # request's prototypes, on top of the exact name and the answer check. Off by default:
    # on SmolLM2 it held no question that the name and the answer check did not, for half a
    # generation per query; on the world it refused 39% of a target's first-name namesakes
    # (docs/routing.md, bench/text_door.py).
    meaning_door: bool = False
    # The answer check (routing/answer_check.py): an answer that names a routed target or
    # states its facts is answered again by its expert, and withheld if it still does.
    answer_check: bool = True


class PromotionSettings(_Section):
    """Deployment defaults; a request's `gate` field overrides them key by key."""

    max_forget_accuracy: float = Field(0.2, ge=0, le=1)  # on held-out forget samples
    # Every other door (text by name, paraphrase, wrapper, the deployment's probes): at most
    # the parent's rate of stating the target's facts about unrelated samples + this.
    max_door_leak: float = Field(0.05, ge=0, le=1)
    # Of the retain (general) samples the parent answered, the share the candidate keeps.
    min_retain_ratio: float = Field(0.9, ge=0)
    min_general_ratio: float = Field(0.9, ge=0)
    # Of every door's answers, the share that states another target's fact or identity
    # (hallucinated) or is degenerate: at most the parent's share + this (1: no check).
    max_hallucinated: float = Field(0.1, ge=0, le=1)
    max_degenerate: float = Field(0.1, ge=0, le=1)


class EvaluationSettings(_Section):
    """Attacks on a method version's doors, after its scoring (reported, not gated): a few
    fine-tuning steps on its forget samples, and the merged weights rounded to fewer bits.
    Routed versions (experts behind the switch) are not merged, so not attacked."""

    relearn_steps: int = Field(10, ge=0)  # 0 = no relearning attack
    quantize_bits: list[int] = [8, 4]  # [] = no quantization probe


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=1, le=65535)
    token: str = ""  # bearer token for write endpoints; "" = writes refused
    # Largest body of /generate, /classify and the chat API (a base64 image: 4/3 its bytes).
    max_body_bytes: int = Field(30_000_000, gt=0)


class Settings(_Section):
    workdir: Path = Path("./unlearnd-data")
    database_url: str = ""  # "" = sqlite:///<workdir>/registry.db
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    seed: int = 0
    # torch CPU threads of serve, generate and api (0 = torch's own: one per core). One is
    # fastest where the cores are shared: threads that wait for a busy core stall every
    # step (bench/threads.py).
    threads: int = Field(1, ge=0)
    model: ModelSettings = ModelSettings()
    limits: LimitSettings = LimitSettings()
    daemon: DaemonSettings = DaemonSettings()
    routing: RoutingSettings = RoutingSettings()
    gate: PromotionSettings = PromotionSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    api: ApiSettings = ApiSettings()
    # The deployment's refusal per category (identity, location, employer, occupation, ...
    # core/refusals.py CUES, or a new one; "fallback" for a question of none; "thing_<key>"
    # for a target that is not a person), over plain-English defaults: what the refuser is
    # trained to say and routed queries may get.
    refusals: dict[str, str] = {}
    # Per method, the deployment's default params (`[methods.refuser] steps = 150`): under a
    # request's own `params`, over the method's built-in defaults; checked at start-up.
    methods: dict[str, dict[str, Any]] = {}

    # Derived paths, so no caller builds them by hand.
    @property
    def inbox(self) -> Path:
        return self.workdir / "inbox"

    @property
    def artifacts(self) -> Path:
        return self.workdir / "artifacts"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.workdir / 'registry.db').resolve()}"


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(keys)}: {key} is not a section")
        tree = node
    tree[keys[-1]] = value


def _closest(key: str, known: Any) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f"; closest key: {match[0]}" if match else ""


def _env_overrides(environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    ignored = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name.startswith(RESERVED_ENV):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        field = Settings.model_fields.get(keys[0])
        if field is None:
            ignored.append(name + _closest(keys[0], Settings.model_fields))
            continue
        section = field.annotation
        if len(keys) > 1 and isinstance(section, type) and issubclass(section, _Section):
            if keys[1] not in section.model_fields:  # a real section, a misspelt key
                wrong = ".".join(keys[:2])
                hint = _closest(keys[1], section.model_fields).replace(": ", f": {keys[0]}.")
                raise ConfigError(f"{name}: unknown key {wrong}{hint}")
        _set_path(tree, keys, value)  # pydantic coerces the strings ("600" -> 600.0)
    if ignored:  # other tools' variables share the prefix: not ours to refuse
        log.warning("ignoring environment variables that are no setting: %s", ", ".join(ignored))
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def config_path(explicit: str | Path | None = None) -> Path | None:
    """The config file in force: --config, then UNLEARND_CONFIG, then ./unlearnd.toml if any."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_PREFIX + "CONFIG")
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_settings(
    path: str | Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read the settings; raises ConfigError naming the offending key."""
    environ = dict(os.environ) if environ is None else environ
    file = config_path(path)
    data: dict[str, Any] = {}
    source = "defaults"
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {file} is not valid TOML: {e}") from e
        source = str(file)
    env = _env_overrides(environ)
    if env:
        source += " + environment"
    try:
        settings = Settings.model_validate(_merge(data, env))
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from e
    if file is not None and not settings.workdir.is_absolute():
        # A relative workdir in a file means relative to that file, not to the caller's cwd.
        settings.workdir = (file.parent / settings.workdir).resolve()
    if file is not None:  # so are the model folder and pools the file names (not the env's)
        from_file, from_env = data.get("model") or {}, env.get("model") or {}
        for key in MODEL_PATHS:
            value = getattr(settings.model, key)
            if value and key in from_file and key not in from_env and not Path(value).is_absolute():
                setattr(settings.model, key, str((file.parent / value).resolve()))
    return settings
