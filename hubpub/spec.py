"""Release specs: the pydantic models, and loading a spec file into validated releases.

A file declares one release, or a family: shared keys plus `variants:`, where each variant
overrides any shared key (nested mappings merge; lists and values replace). Every error is
reported at the user's line as `FILE:LINE:COL: field.path: message`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hubpub.errors import SpecError, SpecProblem
from hubpub.licenses import HUB_LICENSES
from hubpub.schemes import DEFAULT_SMOOTHING_STRENGTH, SCHEMES, Algorithm, Scheme, unknown_scheme_message
from hubpub.yamlsource import Located, PathKey, load_yaml

_HUB_NAME = r"(?!.*--)(?!.*\.\.)[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^{_HUB_NAME}/{_HUB_NAME}$")
_HUB_ID = re.compile(rf"^(?:{_HUB_NAME}/)?{_HUB_NAME}$")
_TAG_SAFE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,98}[A-Za-z0-9])?$")
LOCAL_DATA_SUFFIXES = (".jsonl", ".json", ".txt")


def _check_repo_id(value: str) -> str:
    if not _REPO_ID.match(value) or value.endswith(".git"):
        raise ValueError(
            f"'{value}' is not a valid Hub repo id: use 'namespace/name' with letters, digits, '-', '_' and '.'"
            " (no '--' or '..', at most 96 characters each)"
        )
    return value


def _check_hub_id(value: str) -> str:
    if not _HUB_ID.match(value):
        raise ValueError(f"'{value}' is not a valid Hub model id (expected 'namespace/name' or 'name')")
    return value


def _check_tag_safe(value: str) -> str:
    if not _TAG_SAFE.match(value) or ".." in value or value.endswith(".lock"):
        raise ValueError(
            f"'{value}' cannot be used in a git tag: use letters, digits, '.', '_', '+' and '-',"
            " starting and ending with a letter or digit"
        )
    return value


def _check_scheme(value: str) -> str:
    if value not in SCHEMES:
        raise ValueError(unknown_scheme_message(value))
    return value


def _check_license(value: str) -> str:
    if value not in HUB_LICENSES:
        close = difflib.get_close_matches(value.lower(), sorted(HUB_LICENSES), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else " (use a Hub license id such as 'apache-2.0', or 'other')"
        raise ValueError(f"'{value}' is not a license id the Hub accepts{hint}")
    return value


def _vllm_mode(value: Any) -> Any:
    # YAML 1.1 reads a bare `off` as false.
    return "off" if value is False else value


RepoId = Annotated[str, AfterValidator(_check_repo_id)]
HubId = Annotated[str, AfterValidator(_check_hub_id)]
TagSafe = Annotated[str, AfterValidator(_check_tag_safe)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
# GitHub Actions ends a job on a self-hosted runner after 5 days (hosted runners: 6 hours).
MAX_JOB_MINUTES = 5 * 24 * 60
RunnerLabel = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]


def _spec_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("spec_dir", "."))


def _resolve(path: Path, info: ValidationInfo) -> Path:
    return (_spec_dir(info) / path.expanduser()).resolve()


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(SpecModel):
    """Where the base weights are read from instead of the Hub."""

    path: Path = Field(
        description="A local checkpoint folder, or a folder holding a GGUF file. Relative to the spec file."
    )
    gguf_file: NonEmptyStr | None = Field(default=None, description="The GGUF file inside `path` to convert.")

    @field_validator("path")
    @classmethod
    def _path_exists(cls, value: Path, info: ValidationInfo) -> Path:
        resolved = _resolve(value, info)
        if not resolved.is_dir():
            raise ValueError(f"folder not found: {resolved}")
        return resolved

    @field_validator("gguf_file")
    @classmethod
    def _gguf_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        folder = info.data.get("path")
        if value is not None and folder is not None and not (folder / value).is_file():
            raise ValueError(f"file not found: {folder / value}")
        return value


class Calibration(SpecModel):
    """The data that calibrates the quantization (GPTQ, static activation scales)."""

    dataset: NonEmptyStr = Field(
        description="A Hub dataset id, or a local .jsonl/.json/.txt file relative to the spec."
    )
    split: NonEmptyStr = "train"
    num_samples: int = Field(default=512, gt=0)
    max_seq_length: int = Field(default=2048, gt=0)
    seed: int = 42
    text_column: NonEmptyStr | None = Field(default=None, description="Column of plain text (default 'text').")
    messages_column: NonEmptyStr | None = Field(
        default=None, description="Column of chat messages, rendered with the tokenizer's chat template."
    )

    @field_validator("dataset")
    @classmethod
    def _local_dataset_exists(cls, value: str, info: ValidationInfo) -> str:
        if not is_local_dataset(value):
            return value
        resolved = _resolve(Path(value), info)
        if not resolved.is_file():
            raise ValueError(f"file not found: {resolved}")
        return str(resolved)

    @field_validator("messages_column")
    @classmethod
    def _one_column(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("text_column") is not None:
            raise ValueError("set either text_column or messages_column, not both")
        return value

    @property
    def is_local(self) -> bool:
        return is_local_dataset(self.dataset)

    @property
    def column(self) -> str:
        return self.messages_column or self.text_column or "text"

    @property
    def is_chat(self) -> bool:
        return self.messages_column is not None


def is_local_dataset(value: str) -> bool:
    return value.endswith(LOCAL_DATA_SUFFIXES) or value.startswith(("./", "../", "/", "~"))


def spec_sections(data: dict[str, Any]) -> list[tuple[PathKey, dict[str, Any]]]:
    """A raw spec document's shared keys, then each variant, with where each stands in the document."""
    variants = data.get("variants")
    listed = variants if isinstance(variants, list) else []
    return [((), data), *((("variants", index), item) for index, item in enumerate(listed) if isinstance(item, dict))]


def local_paths(section: dict[str, Any]) -> list[tuple[PathKey, str]]:
    """The local paths one section of a raw spec names, as written, each with its keys: source.path, a local
    calibration.dataset, card.template and each evaluation.include_path folder."""
    source, calibration = section.get("source"), section.get("calibration")
    card, evaluation = section.get("card"), section.get("evaluation")
    dataset = calibration.get("dataset") if isinstance(calibration, dict) else None
    folders = evaluation.get("include_path") if isinstance(evaluation, dict) else None
    named: list[tuple[PathKey, object]] = [
        (("source", "path"), source.get("path") if isinstance(source, dict) else None),
        (("calibration", "dataset"), dataset if isinstance(dataset, str) and is_local_dataset(dataset) else None),
        (("card", "template"), card.get("template") if isinstance(card, dict) else None),
        *((("evaluation", "include_path", index), folder) for index, folder in enumerate(folders or [])),
    ]
    return [(keys, value) for keys, value in named if isinstance(value, str)]


class RelatedModel(SpecModel):
    repo_id: HubId
    scheme: NonEmptyStr | None = None
    description: NonEmptyStr | None = None


class Verify(SpecModel):
    """Checks that the quantized checkpoint loads and generates."""

    prompts: tuple[NonEmptyStr, ...] = Field(default=("What is the capital of France?",), min_length=1)
    max_new_tokens: int = Field(default=32, gt=0, le=4096)
    max_perplexity_ratio: float = Field(
        default=1.5, ge=1.0, description="Quantized / base perplexity must stay at or below this."
    )
    vllm: Annotated[Literal["off", "optional", "required"], BeforeValidator(_vllm_mode)] = Field(
        default="optional",
        description="off: no vLLM checks; optional: static preflight always, a real load when a vLLM Python is"
        " configured; required: vLLM must be predicted to load it and the real load must run and pass.",
    )
    vllm_python: NonEmptyStr | None = Field(
        default=None,
        description="A Python interpreter with vLLM installed (its own environment), for the real load;"
        " HUBPUB_VLLM_PYTHON or --vllm-python override it.",
    )


class Evaluation(SpecModel):
    """lm-evaluation-harness runs on the base and the quantized model."""

    tasks: tuple[NonEmptyStr, ...] = Field(min_length=1)
    num_fewshot: int = Field(default=0, ge=0)
    limit: int | float | None = Field(default=None, gt=0, description="Examples per task (an int) or a fraction (0-1].")
    batch_size: int | Literal["auto"] = 1
    seed: int = 1234
    include_path: tuple[Path, ...] = Field(default=(), description="Folders of local lm-eval task YAML files.")
    min_recovery: float | dict[str, float] | None = Field(
        default=None, description="Quantized / base score must reach this, globally or per task (e.g. 0.95)."
    )
    min_recovery_lower: float | dict[str, float] | None = Field(
        default=None,
        description="The lower bound of recovery's 95% interval must reach this, globally or per task (e.g. 0.9).",
    )
    primary: NonEmptyStr | None = Field(
        default=None,
        description="The task whose first metric heads the release summary (default: the first of `tasks`).",
    )

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("batch_size must be a positive integer or 'auto'")
        return value

    @field_validator("include_path")
    @classmethod
    def _folders_exist(cls, value: tuple[Path, ...], info: ValidationInfo) -> tuple[Path, ...]:
        resolved = tuple(_resolve(path, info) for path in value)
        for folder in resolved:
            if not folder.is_dir():
                raise ValueError(f"folder not found: {folder}")
        return resolved

    @field_validator("min_recovery", "min_recovery_lower")
    @classmethod
    def _recovery_range(
        cls, value: float | dict[str, float] | None, info: ValidationInfo
    ) -> float | dict[str, float] | None:
        values = value.values() if isinstance(value, dict) else [] if value is None else [value]
        for number in values:
            if not 0 < number <= 1.5:
                raise ValueError(f"{info.field_name} {number} is outside (0, 1.5]; 0.95 means 95% of the base score")
        return value

    @field_validator("primary")
    @classmethod
    def _primary_is_a_task(cls, value: str | None, info: ValidationInfo) -> str | None:
        tasks = info.data.get("tasks")
        if value is not None and tasks is not None and value not in tasks:
            raise ValueError(f"{value!r} is not one of evaluation.tasks: {', '.join(tasks)}")
        return value


class ExtraSection(SpecModel):
    title: NonEmptyStr
    body: NonEmptyStr


class Card(SpecModel):
    """How the model card is rendered."""

    template: Path | None = Field(default=None, description="A Jinja2 template extending the default card.")
    extra_sections: tuple[ExtraSection, ...] = ()

    @field_validator("template")
    @classmethod
    def _template_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        resolved = _resolve(value, info)
        if not resolved.is_file():
            raise ValueError(f"file not found: {resolved}")
        return resolved


class Push(SpecModel):
    private: bool = False
    tag: TagSafe | None = Field(default=None, description="The Hub tag of the release commit (default v{version}).")


_COLLECTION_SLUG = re.compile(rf"^{_HUB_NAME}/(?:[a-z0-9]+(?:-[a-z0-9]+)*-)?[0-9a-f]{{24}}$")
COLLECTION_TITLE_MAX = 60
COLLECTION_DESCRIPTION_MAX = 150


def _check_collection_slug(value: str) -> str:
    if not _COLLECTION_SLUG.match(value):
        raise ValueError(
            f"'{value}' is not a collection slug: use 'namespace/title-<24 hex id>' as the collection's URL shows it"
        )
    return value


class Collection(SpecModel):
    """The family's collection on the Hub: the base model first, then each published variant with its facts."""

    enabled: bool = Field(default=True, description="false: leave the family's collection alone.")
    slug: Annotated[str, AfterValidator(_check_collection_slug)] | None = Field(
        default=None,
        description="An existing collection to use (namespace/title-<24 hex id>) instead of the one titled from the"
        " family, in the namespace of the first variant's repo.",
    )
    title: Annotated[str, Field(min_length=1, max_length=COLLECTION_TITLE_MAX)] | None = Field(
        default=None, description="The title of a collection hubpub creates (default: the family's name)."
    )
    description: Annotated[str, Field(min_length=1, max_length=COLLECTION_DESCRIPTION_MAX)] | None = Field(
        default=None, description="Its description (default: the base model and the schemes of the family)."
    )
    private: bool = Field(default=False, description="Whether a collection hubpub creates is private.")
    prune: bool = Field(
        default=False,
        description="Delete the items of variants no longer in the spec; otherwise they are only reported.",
    )


def _check_gpus(value: Any) -> Any:
    """A whole number of GPUs; the words a CPU run is often written with get the spelling hubpub takes."""
    if isinstance(value, bool) or (isinstance(value, str) and not value.strip().isdigit()):
        cpu = value is False or str(value).strip().lower() in ("cpu", "none", "no", "off", "false")
        hint = "; for a CPU run write `gpus: 0`" if cpu else ""
        raise ValueError(f"gpus takes a whole number of GPUs (0 for a CPU run), not {value!r}{hint}")
    return value


class Runner(SpecModel):
    """The machine a variant's release job runs on, as the resource plan checks it before any download.

    Sizes are decimal gigabytes (10^9 bytes). Without this section the plan checks the machine it runs on.
    """

    gpus: Annotated[int | None, BeforeValidator(_check_gpus)] = Field(
        default=None,
        ge=0,
        description="GPUs the job may use; 0 declares a CPU run, on a machine with GPUs too (stated on the card)."
        " Without it, a machine with an NVIDIA GPU must have usable CUDA.",
    )
    gpu_memory_gb: float | None = Field(
        default=None, gt=0, description="Memory of each GPU in GB; required when gpus is above 0."
    )
    ram_gb: float | None = Field(default=None, gt=0, description="Host RAM in GB (default: not checked).")
    disk_gb: float | None = Field(
        default=None, gt=0, description="Free disk for the work folder in GB (default: not checked)."
    )
    cpu_offload: bool = Field(
        default=False,
        description="Let a model that does not fit the GPUs spill layers into host RAM (slow); otherwise the plan"
        " refuses.",
    )

    @field_validator("gpu_memory_gb")
    @classmethod
    def _memory_with_gpus(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not info.data.get("gpus"):
            raise ValueError("gpu_memory_gb needs gpus above 0")
        return value

    @property
    def cpu_run(self) -> bool:
        """The spec declares a CPU run (`gpus: 0`): no GPU is used even on a machine that has one."""
        return self.gpus == 0

    @model_validator(mode="after")
    def _gpus_with_memory(self) -> Runner:
        if self.gpus and self.gpu_memory_gb is None:
            raise ValueError(f"gpus: {self.gpus} needs gpu_memory_gb, the memory of each GPU in GB")
        return self


JOB_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"
"""The image huggingface_hub's `run_uv_job` defaults to: Debian with Python 3.12 and uv, which installs hubpub."""
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd]?)$")
_DURATION_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(?:@sha256:[0-9a-f]{64})?$")
_INSTALL = re.compile(r"^(?:hubpub(?:\[[a-z0-9,_-]+\])?(?:[=<>!~]=?[A-Za-z0-9.*+!_-]+)?|git\+https://\S+|https://\S+)$")


def job_flavors() -> tuple[str, ...]:
    """The hardware flavors huggingface_hub knows for Jobs (imported only when a spec has a `jobs:` section)."""
    from huggingface_hub import JobHardware

    return tuple(flavor.value for flavor in JobHardware)


def _check_flavor(value: str) -> str:
    flavors = job_flavors()
    if value not in flavors:
        close = difflib.get_close_matches(value, flavors, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown Jobs flavor '{value}'{hint} Known flavors: {', '.join(flavors)}")
    return value


def _check_duration(value: str | int) -> str:
    text = str(value).strip()
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"'{value}' is not a duration: use a positive number with s, m, h or d (e.g. 90m, 6h)")
    return text


def _check_image(value: str) -> str:
    if not _IMAGE.match(value) or len(value) > 300:
        raise ValueError(
            f"'{value}' is not a container image reference such as ghcr.io/astral-sh/uv:python3.12-bookworm"
            " (pin it with @sha256:<digest>)"
        )
    return value


def _check_install(value: str) -> str:
    if not _INSTALL.match(value):
        raise ValueError(
            f"'{value}' does not name hubpub: use a requirement such as 'hubpub==1.2.3', or a URL such as"
            " 'git+https://github.com/<owner>/hubpub@<commit>'"
        )
    return value


def _check_namespace(value: str) -> str:
    if not re.match(rf"^{_HUB_NAME}$", value):
        raise ValueError(f"'{value}' is not a Hub user or organization name")
    return value


def _default_install() -> str:
    from hubpub.version import __version__

    return f"hubpub=={__version__}"


class Jobs(SpecModel):
    """How `hubpub release --on hf-jobs` runs this variant as a Hugging Face Job (one job per variant)."""

    flavor: Annotated[str, AfterValidator(_check_flavor)] = Field(
        description="The Jobs hardware flavor (huggingface_hub's JobHardware), e.g. a10g-large, a100-large, h200."
    )
    timeout: Annotated[str | int, AfterValidator(_check_duration)] = Field(
        default="6h", description="The job's time limit: seconds, or a number with s, m, h or d. Billing stops there."
    )
    image: Annotated[str, AfterValidator(_check_image)] = Field(
        default=JOB_IMAGE,
        description="The container image; it needs uv (uvx installs hubpub). Pin it by digest: name@sha256:<digest>.",
    )
    install: Annotated[str, AfterValidator(_check_install)] = Field(
        default_factory=_default_install,
        description="What `uvx --from` installs in the job: 'hubpub==<version>' (default: this hubpub's version),"
        " or 'git+https://github.com/<owner>/hubpub@<commit>'.",
    )
    namespace: Annotated[str, AfterValidator(_check_namespace)] | None = Field(
        default=None, description="The user or organization the job runs and bills under (default: the token's user)."
    )

    @property
    def timeout_seconds(self) -> int:
        match = _DURATION.match(str(self.timeout))
        assert match is not None
        return int(float(match.group(1)) * _DURATION_SECONDS[match.group(2)])

    @property
    def pinned(self) -> bool:
        return "@sha256:" in self.image


class ReleaseSpec(SpecModel):
    """One release: a base model, a quantization scheme, and what to check and publish."""

    name: TagSafe | None = Field(default=None, description="The variant's name; defaults to its scheme.")
    family: TagSafe | None = Field(default=None, description="The family this release belongs to.")
    base_model: HubId
    base_revision: NonEmptyStr | None = Field(
        default=None, description="Branch, tag or commit; pinned to a sha at release."
    )
    source: Source | None = None
    repo_id: RepoId
    scheme: Annotated[str, AfterValidator(_check_scheme)]
    algorithm: Algorithm = Field(
        default="rtn",
        description="rtn (QuantizationModifier), gptq (GPTQModifier), smoothquant+gptq (SmoothQuantModifier, then"
        " GPTQModifier; integer-activation schemes) or awq (AWQModifier, then QuantizationModifier; weight-only"
        " integer schemes).",
    )
    smoothing_strength: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=f"SmoothQuant's alpha, with algorithm smoothquant+gptq (default {DEFAULT_SMOOTHING_STRENGTH}).",
    )
    group_size: int | None = Field(default=None, gt=0)
    ignore: tuple[NonEmptyStr, ...] = ("lm_head",)
    targets: tuple[NonEmptyStr, ...] = Field(default=("Linear",), min_length=1)
    calibration: Calibration | None = Field(default=None, validate_default=True)
    related_models: tuple[RelatedModel, ...] = ()
    license: Annotated[str, AfterValidator(_check_license)] | None = None
    tags: tuple[NonEmptyStr, ...] = ()
    version: TagSafe | None = Field(default=None, description="The release version; the Hub tag is v{version}.")
    verify: Verify = Verify()
    evaluation: Evaluation | None = None
    card: Card = Card()
    push: Push = Push()
    collection: Collection | None = Field(
        default=None,
        description="The family's Hub collection (a family gets one by default); set it with the shared keys.",
    )
    runs_on: tuple[RunnerLabel, ...] = Field(
        default=("self-hosted", "gpu"),
        min_length=1,
        description="GitHub Actions runner labels for this variant's release job (`hubpub matrix`).",
    )
    runner: Runner | None = Field(
        default=None,
        description="The resources of the machine the release job runs on; `hubpub plan` and `release` check"
        " every stage against them before anything is downloaded.",
    )
    timeout_minutes: int = Field(
        default=360,
        gt=0,
        le=MAX_JOB_MINUTES,
        description="Time limit of this variant's release and publish jobs on GitHub Actions (`hubpub matrix`).",
    )
    jobs: Jobs | None = Field(
        default=None,
        description="Hugging Face Jobs settings for `hubpub release --on hf-jobs`: flavor, timeout, image, install.",
    )

    @field_validator("collection")
    @classmethod
    def _collection_of_a_family(cls, value: Collection | None, info: ValidationInfo) -> Collection | None:
        if value is not None and value.enabled and not info.data.get("family"):
            raise ValueError("a collection gathers a family's variants: set `family` too")
        return value

    @property
    def family_collection(self) -> Collection | None:
        """The collection this release's family keeps on the Hub; None when it keeps none."""
        if self.family is None:
            return None
        chosen = self.collection or Collection()
        return chosen if chosen.enabled else None

    @field_validator("algorithm")
    @classmethod
    def _algorithm_fits_scheme(cls, value: Algorithm, info: ValidationInfo) -> Algorithm:
        scheme = SCHEMES.get(info.data.get("scheme", ""))
        refusal = scheme.algorithm_refusal(value) if scheme is not None else None
        if refusal is not None:
            raise ValueError(refusal)
        return value

    @field_validator("smoothing_strength")
    @classmethod
    def _smoothing_with_smoothquant(cls, value: float | None, info: ValidationInfo) -> float | None:
        algorithm = info.data.get("algorithm")
        if value is not None and algorithm is not None and algorithm != "smoothquant+gptq":
            raise ValueError(
                f"SmoothQuant's alpha applies to algorithm smoothquant+gptq only, not '{algorithm}':"
                " remove it or set algorithm: smoothquant+gptq"
            )
        return value

    @field_validator("group_size")
    @classmethod
    def _group_size_fits_scheme(cls, value: int | None, info: ValidationInfo) -> int | None:
        scheme = SCHEMES.get(info.data.get("scheme", ""))
        if value is not None and scheme is not None and not scheme.uses_groups:
            raise ValueError(
                f"{scheme.name} quantizes weights per {scheme.weights.strategy},"
                " so group_size does not apply; remove it"
            )
        return value

    @field_validator("calibration")
    @classmethod
    def _calibration_when_needed(cls, value: Calibration | None, info: ValidationInfo) -> Calibration | None:
        scheme = SCHEMES.get(info.data.get("scheme", ""))
        algorithm = info.data.get("algorithm")
        if value is None and scheme is not None and algorithm and scheme.needs_calibration(algorithm):
            raise ValueError(
                f"a calibration dataset is required: {scheme.name} with {algorithm} reads calibration data"
            )
        return value

    @property
    def variant(self) -> str:
        return self.name or self.scheme

    @property
    def scheme_info(self) -> Scheme:
        return SCHEMES[self.scheme]

    @property
    def effective_group_size(self) -> int | None:
        return self.group_size or self.scheme_info.default_group_size

    @property
    def hub_tag(self) -> str | None:
        if self.push.tag:
            return self.push.tag
        return f"v{self.version}" if self.version else None

    def recipe(self) -> dict[str, Any]:
        """The llm-compressor recipe this release runs."""
        return self.scheme_info.recipe(
            algorithm=self.algorithm,
            targets=list(self.targets),
            ignore=list(self.ignore),
            group_size=self.group_size,
            smoothing_strength=self.smoothing_strength,
        )


@dataclasses.dataclass(frozen=True)
class SpecFile:
    """A loaded spec file: one release, or the variants of a family."""

    path: Path
    releases: tuple[ReleaseSpec, ...]
    is_family: bool

    @property
    def family(self) -> str | None:
        return self.releases[0].family if self.releases else None

    def select(self, variant: str | None) -> tuple[ReleaseSpec, ...]:
        if variant is None:
            return self.releases
        chosen = tuple(release for release in self.releases if release.variant == variant)
        if not chosen:
            names = ", ".join(release.variant for release in self.releases)
            raise SpecError([SpecProblem(self.path, 1, 1, "variants", f"no variant named '{variant}' (have: {names})")])
        return chosen


def load_spec(path: str | Path) -> SpecFile:
    """Load and validate a spec file; raises SpecError listing every problem at its line."""
    file = Path(path)
    located = load_yaml(file)
    shared = dict(located.data)
    variants = shared.pop("variants", None)
    if variants is None:
        try:
            release = _validate(located, shared, _Origin())
        except _Invalid as invalid:
            raise SpecError([problem for problem, _ in invalid.problems]) from None
        return SpecFile(path=file, releases=(release,), is_family=False)
    if not isinstance(variants, list) or not variants:
        raise SpecError([located.problem(("variants",), "variants", "must be a non-empty list of variant mappings")])
    problems: list[SpecProblem] = []
    shared_problems: dict[SpecProblem, list[str]] = {}
    releases: list[ReleaseSpec] = []
    for index, variant in enumerate(variants):
        if not isinstance(variant, dict):
            problems.append(
                located.problem(("variants", index), f"variants[{index}]", "each variant must be a mapping")
            )
            continue
        if "variants" in variant:
            problems.append(
                located.problem(
                    ("variants", index, "variants"), f"variants[{index}].variants", "variants cannot nest", key=True
                )
            )
            continue
        origin = _Origin(variant, ("variants", index))
        try:
            releases.append(_validate(located, _deep_merge(shared, variant), origin))
        except _Invalid as invalid:
            label = str(variant.get("name") or variant.get("scheme") or f"#{index + 1}")
            for problem, in_shared_keys in invalid.problems:
                if in_shared_keys:
                    shared_problems.setdefault(problem, []).append(label)
                else:
                    problems.append(problem)
    for problem, labels in shared_problems.items():
        which = (
            "all variants"
            if len(labels) == len(variants)
            else f"variant{'s' if len(labels) > 1 else ''} {', '.join(labels)}"
        )
        problems.append(dataclasses.replace(problem, message=f"{problem.message} ({which})"))
    problems.extend(_family_problems(located, variants, releases))
    if problems:
        raise SpecError(sorted(problems, key=lambda problem: (problem.line, problem.column)))
    return SpecFile(path=file, releases=tuple(releases), is_family=True)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclasses.dataclass(frozen=True)
class _Origin:
    """Maps a location in a merged release back to where the user wrote it."""

    variant: dict[str, Any] | None = None
    root: PathKey = ()

    def of(self, loc: PathKey) -> PathKey:
        if self.variant is None:
            return loc
        node: Any = self.variant
        for depth, key in enumerate(loc):
            if not isinstance(node, dict):
                return (*self.root, *loc[:depth])
            if key not in node:
                return loc
            node = node[key]
        return (*self.root, *loc)


def field_label(path: PathKey) -> str:
    """A field as errors name it: `variants[1].card.template`."""
    label = ""
    for key in path:
        label += f"[{key}]" if isinstance(key, int) else (f".{key}" if label else key)
    return label


class _Invalid(Exception):
    """Problems of one merged release, each flagged when it stands in the family's shared keys."""

    def __init__(self, problems: list[tuple[SpecProblem, bool]]) -> None:
        self.problems = problems


def _validate(located: Located, data: dict[str, Any], origin: _Origin) -> ReleaseSpec:
    try:
        return ReleaseSpec.model_validate(data, context={"spec_dir": located.file.parent})
    except ValidationError as exc:
        raise _Invalid([_problem(located, error, origin) for error in exc.errors()]) from None


def _problem(located: Located, error: Any, origin: _Origin) -> tuple[SpecProblem, bool]:
    loc: PathKey = tuple(part for part in error["loc"] if not (isinstance(part, str) and _is_union_tag(part)))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    where = origin.of(loc)
    if kind == "missing":
        parent = origin.of(loc[:-1]) if len(loc) > 1 else origin.root
        return located.problem(parent, field_label(loc), "required key is missing"), _in_shared(parent, origin)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(ReleaseSpec, loc[:-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
        message = f"unknown key '{key}'{hint}"
        return located.problem(where, field_label(where), message, key=True), _in_shared(where, origin)
    if (
        "input" in error
        and kind not in {"value_error", "assertion_error"}
        and not isinstance(error["input"], dict | list)
    ):
        message = f"{message} (got {error['input']!r})"
    return located.problem(where, field_label(where), message), _in_shared(where, origin)


def _in_shared(where: PathKey, origin: _Origin) -> bool:
    return bool(origin.root) and where[: len(origin.root)] != origin.root


def _is_union_tag(part: str) -> bool:
    return part in {"int", "float", "str", "bool", "literal['auto']", "dict[str,float]"} or part.startswith(
        ("function-after[", "function-before[", "literal[", "constrained-", "lax-or-strict[")
    )


def _known_keys(model: type[BaseModel], loc: PathKey) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _model_in(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, tuple, list, Annotated):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


def _family_problems(located: Located, variants: list[Any], releases: list[ReleaseSpec]) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    if len(releases) != len(variants):
        return problems
    seen_repos: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for index, release in enumerate(releases):
        if "collection" in variants[index]:
            problems.append(
                located.problem(
                    ("variants", index, "collection"),
                    f"variants[{index}].collection",
                    "the collection belongs to the whole family: set it with the shared keys, not in a variant",
                    key=True,
                )
            )
        if release.repo_id in seen_repos:
            path = ("variants", index, "repo_id") if "repo_id" in variants[index] else ("variants", index)
            problems.append(
                located.problem(
                    path,
                    f"variants[{index}].repo_id",
                    f"duplicate repo_id '{release.repo_id}':"
                    f" variant {seen_repos[release.repo_id] + 1} publishes there too",
                )
            )
        seen_repos.setdefault(release.repo_id, index)
        if release.variant in seen_names:
            problems.append(
                located.problem(
                    ("variants", index),
                    f"variants[{index}].name",
                    f"duplicate variant name '{release.variant}'; give each variant a distinct `name`",
                )
            )
        seen_names.setdefault(release.variant, index)
    return problems


def spec_json_schema() -> dict[str, Any]:
    """The JSON schema of a spec file: a release's keys, plus `variants` of partial releases."""
    release = ReleaseSpec.model_json_schema()
    properties = dict(release["properties"])
    variant = {
        "type": "object",
        "additionalProperties": False,
        "properties": dict(properties),
        "description": "One variant of the family: any release key, overriding the shared value.",
    }
    properties["variants"] = {"type": "array", "minItems": 1, "items": variant}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hubpub release spec",
        "description": "One release, or a family: shared keys plus `variants`. "
        f"A release (after merging a variant) requires: {', '.join(release.get('required', []))}.",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "$defs": release.get("$defs", {}),
    }
