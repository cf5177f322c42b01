"""The scheme registry: what each quantization scheme is, and how it becomes an llm-compressor recipe.

The quantization arguments mirror compressed-tensors' preset schemes (0.19), written out in
full so the recipe that runs, the plan and the model card all show the same explicit values.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

Algorithm = Literal["rtn", "gptq", "smoothquant+gptq", "awq"]

MODIFIER_FOR_ALGORITHM: dict[str, str] = {
    "rtn": "QuantizationModifier",
    "gptq": "GPTQModifier",
    "smoothquant+gptq": "GPTQModifier",
    "awq": "QuantizationModifier",
}
"""The modifier that quantizes; smoothquant+gptq and awq run a transform before it (TRANSFORM_FOR_ALGORITHM)."""
TRANSFORM_FOR_ALGORITHM: dict[str, str] = {"smoothquant+gptq": "SmoothQuantModifier", "awq": "AWQModifier"}
"""llm-compressor 0.14's SmoothQuant and AWQ only rescale weights (modifiers/transform/): a quantizing modifier
after them makes the compressed checkpoint, as RedHatAI's W8A8 recipes and llm-compressor's AWQ examples do."""
ALGORITHM_LABELS: dict[str, str] = {
    "rtn": "round-to-nearest",
    "gptq": "GPTQ",
    "smoothquant+gptq": "SmoothQuant + GPTQ",
    "awq": "AWQ",
}
ALGORITHM_FIT: dict[str, str] = {
    "smoothquant+gptq": "SmoothQuant moves activation outliers into the weights, for schemes that quantize"
    " activations to integers",
    "awq": "AWQ rescales salient weight channels for weight-only integer schemes",
}
"""Why an algorithm fits only some schemes: the refusal's reason."""
DEFAULT_SMOOTHING_STRENGTH = 0.8
"""SmoothQuant's alpha as RedHatAI's W8A8 checkpoints and llm-compressor's W8A8 example use it (the library's
own default is 0.5)."""
AWQ_ARGUMENTS: dict[str, Any] = {"duo_scaling": True, "n_grid": 20}
"""AWQModifier's grid search, written out: llm-compressor 0.14's defaults."""


@dataclass(frozen=True)
class TensorQuant:
    """How one tensor kind (weights or input activations) is quantized."""

    num_bits: int
    type: Literal["int", "float"]
    strategy: Literal["tensor", "channel", "group", "token"]
    symmetric: bool = True
    dynamic: bool = False
    group_size: int | None = None

    def as_args(self, group_size: int | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "num_bits": self.num_bits,
            "type": self.type,
            "strategy": self.strategy,
            "symmetric": self.symmetric,
            "dynamic": self.dynamic,
        }
        if self.strategy == "group":
            args["group_size"] = group_size or self.group_size
        return args

    @property
    def label(self) -> str:
        return f"{'INT' if self.type == 'int' else 'FP'}{self.num_bits}"


@dataclass(frozen=True)
class Scheme:
    """One entry of the registry: the facts a card states and the arguments a recipe needs."""

    name: str
    summary: str
    weights: TensorQuant
    activations: TensorQuant | None
    memory_saving: str
    compute: str
    best_for: str
    algorithms: tuple[Algorithm, ...] = ("rtn", "gptq")

    @property
    def weight_bits(self) -> int:
        return self.weights.num_bits

    @property
    def activation_bits(self) -> int:
        return self.activations.num_bits if self.activations else 16

    @property
    def uses_groups(self) -> bool:
        return self.weights.strategy == "group"

    @property
    def default_group_size(self) -> int | None:
        return self.weights.group_size if self.uses_groups else None

    def algorithm_refusal(self, algorithm: Algorithm) -> str | None:
        """Why this scheme cannot be quantized with `algorithm`; None when it can."""
        if algorithm in self.algorithms:
            return None
        fit = ALGORITHM_FIT.get(algorithm)
        fitting = [scheme.name for scheme in SCHEMES.values() if algorithm in scheme.algorithms]
        why = f": {fit} ({', '.join(fitting)})" if fit else ""
        *others, last = self.algorithms
        known = f"{', '.join(others)} or {last}" if others else last
        return f"{self.name} supports algorithm {known}, not '{algorithm}'{why}"

    def needs_calibration(self, algorithm: Algorithm) -> bool:
        """GPTQ, SmoothQuant and AWQ always read data; round-to-nearest only needs it for static activation
        scales."""
        static_activations = self.activations is not None and not self.activations.dynamic
        return algorithm != "rtn" or static_activations

    def recipe(
        self,
        *,
        algorithm: Algorithm,
        targets: list[str],
        ignore: list[str],
        group_size: int | None = None,
        smoothing_strength: float | None = None,
    ) -> dict[str, Any]:
        """The llm-compressor recipe (as its YAML structure) for this scheme and these choices: the transform
        of smoothquant+gptq or awq first, with its arguments written out, then the quantizing modifier."""
        group: dict[str, Any] = {"targets": list(targets), "weights": self.weights.as_args(group_size)}
        if self.activations is not None:
            group["input_activations"] = self.activations.as_args()
        modifier: dict[str, Any] = {
            "targets": list(targets),
            "ignore": list(ignore),
            "config_groups": {"group_0": group},
        }
        modifiers: dict[str, Any] = {}
        if algorithm == "smoothquant+gptq":
            strength = DEFAULT_SMOOTHING_STRENGTH if smoothing_strength is None else smoothing_strength
            modifiers["SmoothQuantModifier"] = {"smoothing_strength": strength}
        elif algorithm == "awq":
            modifiers["AWQModifier"] = dict(AWQ_ARGUMENTS)
        modifiers[MODIFIER_FOR_ALGORITHM[algorithm]] = modifier
        return {"quant_stage": {"quant_modifiers": modifiers}}


_INT4_GROUP = TensorQuant(num_bits=4, type="int", strategy="group", group_size=128)
_DYNAMIC_INT8_TOKEN = TensorQuant(num_bits=8, type="int", strategy="token", dynamic=True)
_DYNAMIC_FP8_TOKEN = TensorQuant(num_bits=8, type="float", strategy="token", dynamic=True)

SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        Scheme(
            name="W4A16",
            summary=(
                "4-bit integer weights in groups, 16-bit activations:"
                " weights are dequantized to BF16 inside each matrix multiply"
            ),
            weights=_INT4_GROUP,
            activations=None,
            memory_saving="~4x",
            compute="BF16 (memory-bound gains only)",
            best_for="Small GPUs, low-latency single user",
            algorithms=("rtn", "gptq", "awq"),
        ),
        Scheme(
            name="W4A16_ASYM",
            summary="4-bit integer weights in groups with zero points (asymmetric), 16-bit activations",
            weights=TensorQuant(num_bits=4, type="int", strategy="group", symmetric=False, group_size=128),
            activations=None,
            memory_saving="~4x",
            compute="BF16 (memory-bound gains only)",
            best_for="Small GPUs when symmetric INT4 loses too much accuracy",
            algorithms=("rtn", "gptq", "awq"),
        ),
        Scheme(
            name="W8A16",
            summary="8-bit integer weights in groups, 16-bit activations",
            weights=TensorQuant(num_bits=8, type="int", strategy="group", group_size=128),
            activations=None,
            memory_saving="~2x",
            compute="BF16 (memory-bound gains only)",
            best_for="Mild memory pressure, near-lossless accuracy",
            algorithms=("rtn", "gptq", "awq"),
        ),
        Scheme(
            name="W8A8",
            summary="8-bit integer weights per channel and 8-bit integer activations quantized per token at run time",
            weights=TensorQuant(num_bits=8, type="int", strategy="channel"),
            activations=_DYNAMIC_INT8_TOKEN,
            memory_saving="~2x",
            compute="INT8 tensor cores",
            best_for="High-throughput batched serving",
            algorithms=("rtn", "gptq", "smoothquant+gptq"),
        ),
        Scheme(
            name="FP8_DYNAMIC",
            summary="FP8 (E4M3) weights per channel and FP8 activations quantized per token at run time",
            weights=TensorQuant(num_bits=8, type="float", strategy="channel"),
            activations=_DYNAMIC_FP8_TOKEN,
            memory_saving="~2x",
            compute="FP8 tensor cores (Ada, Hopper and newer)",
            best_for="Batched serving on Ada/Hopper GPUs without calibration data",
            algorithms=("rtn",),
        ),
    )
}


def get_scheme(name: str) -> Scheme:
    """Look a scheme up by its registry name; raises KeyError with a did-you-mean."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(unknown_scheme_message(name)) from None


def unknown_scheme_message(name: str) -> str:
    by_upper = {known.upper(): known for known in SCHEMES}
    close = difflib.get_close_matches(name.upper(), list(by_upper), n=1, cutoff=0.6)
    hint = f"; did you mean '{by_upper[close[0]]}'?" if close else ""
    return f"unknown scheme '{name}'{hint} Known schemes: {', '.join(SCHEMES)}"
