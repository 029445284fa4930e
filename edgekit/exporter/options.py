"""Every option of an export, declared once: ``ExportOptions``.

The command line (``edgekit export``), ``edgekit.toml`` and the Python API (``edgekit.export``) all go through
this model, with one precedence: a value given (on the command line or as an argument) > ``edgekit.toml`` in the
current folder > the default here. ``None`` always means "not given". The field descriptions are the CLI's help.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, Strict, StrictBool,
                      ValidationError)

from ..errors import InputError
from ..specs import InputSpec
from ..targets import TargetProfile
from .project import read_project

DOCS_HINT = "see docs/export.md, section edgekit.toml"


def _path_text(value: Any) -> Any:
    """A ``Path`` (or any path-like) is kept as its text; everything else is left for the type to judge."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _target(value: Any) -> str | TargetProfile:
    value = _path_text(value)
    if isinstance(value, (str, TargetProfile)):
        return value
    raise ValueError("expected a target name, a path to a profile .toml or a TargetProfile")


def _inputs(value: Any) -> list[str | InputSpec] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, InputSpec)) for v in value):
        return list(value)
    raise ValueError('expected a list of "NAME:1x3x224x224[:float32]" strings')


def _outputs(value: Any) -> list[str] | dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    raise ValueError('expected a list of "NAME:KIND" strings (or, from Python, a dict NAME -> KIND)')


def _preprocess(value: Any) -> Any:
    from ..data.images import PreprocessSpec

    value = _path_text(value)
    if value is None or isinstance(value, (str, PreprocessSpec)):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError('expected "resize=256,crop=224,..." text, a .json/.toml file or a table')


def _format(value: str) -> str:
    """A route's name (``exporter/routes/``, plugins included) or ``auto``."""
    from .routes import route_names

    valid = [*route_names(), "auto"]
    if value not in valid:
        raise ValueError(f"not one of {', '.join(repr(v) for v in valid)}")
    return value


PathText = Annotated[str, BeforeValidator(_path_text), Strict()]
StrictFloat = Annotated[float, Strict()]


class ExportOptions(BaseModel):
    """The options of one export. Every field is optional in ``edgekit.toml`` (paths there are relative to the
    file); which fields were given is ``model_fields_set``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: PathText | None = Field(None, description="file.py:factory, package.module:factory, or model.onnx. "
                                                     "Defaults to 'model' in ./edgekit.toml.")
    target: Annotated[str | TargetProfile, PlainValidator(_target)] = Field(
        "x86", description="Target name (see `edgekit targets list`) or path to a profile .toml. Default: x86.")
    out: PathText | None = Field(None, description="Artifact folder ({model} and {target} are filled in). "
                                                   "Default: edgekit-out/NAME-TARGET.")
    inputs: Annotated[list[str | InputSpec] | None, PlainValidator(_inputs)] = Field(
        None, description="NAME:1x3x224x224[:float32]; repeat per input.")
    outputs: Annotated[list[str] | dict[str, str] | None, PlainValidator(_outputs)] = Field(
        None, description="NAME:KIND, KIND one of class, regression, embedding, detection, mask, sequence: how the "
                          "gate compares that output (default: inferred from the original's outputs, with the "
                          "evidence shown); repeat per output.")
    calib: PathText | None = Field(None, description="Calibration data: .npz keyed by input name, a folder of "
                                                     ".npy/.npz, a folder of images (with --preprocess) or a .txt "
                                                     "of sentences (with --tokenizer).")
    val: PathText | None = Field(None, description="Validation data (same forms; 'labels' key or class sub-folders "
                                                   "optional).")
    tokenizer: PathText | None = Field(None, description="The model's Hugging Face tokenizer (a folder holding "
                                                         "tokenizer.json, or that file): a .txt of sentences given "
                                                         "as data is tokenized with it.")
    preprocess: Annotated[Any, PlainValidator(_preprocess)] = Field(
        None, description="How a folder of images given as data becomes the model input: 'resize=256,crop=224,"
                          "mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw,channels=rgb' (or a .json/.toml "
                          "file, or a table in edgekit.toml).")
    format: Annotated[str, Strict(), AfterValidator(_format)] | None = Field(
        None, description="A route: onnx, tflite, openvino or executorch (every candidate must pass; --plan lists "
                          "them), or auto: build all the target allows, pick the fastest that passes. Default: "
                          "auto if the target allows several formats.")
    dynamic_batch: StrictBool = Field(False, description="Make the first axis of every input dynamic. Default: "
                                                         "static.")
    simplify: StrictBool = Field(True, description="Run onnxsim. Default: on.")
    cosine_min: StrictFloat | None = Field(None, ge=-1.0, le=1.0,
                                           description="Override the profile's cosine budget (in [-1, 1]).")
    top1_min: StrictFloat | None = Field(None, ge=0.0, le=1.0,
                                         description="Override the profile's top-1 agreement budget (in [0, 1]).")
    max_abs_error: StrictFloat | None = Field(None, ge=0.0, description="Override the profile's max abs error "
                                                                        "budget (>= 0).")
    benchmark: StrictBool = Field(True, description="Measure latency per artifact. Default: on.")
    rescue: StrictBool = Field(True, description="If an INT8 candidate breaks the budget, retry it with the most "
                                                 "sensitive layers kept in float (ONNX, a given .tflite; OpenVINO "
                                                 "by NNCF's accuracy control; --plan shows each). Default: on.")
    rescue_budget_s: StrictFloat = Field(60.0, gt=0, description="Seconds the rescue may spend searching for the "
                                                                 "layers to keep in float. Default: 60.")
    overwrite: StrictBool = Field(False, description="Replace an existing output folder. Default: off.")
    agent: str | None = Field(None, description="Measure candidate latency on this device's agent "
                                                "(http://HOST:PORT) instead of this host.")
    token_file: PathText | None = Field(None, description="The agent's token file. Default: $EDGEKIT_AGENT_TOKEN.")

    @classmethod
    def parse(cls, values: Mapping[str, Any], where: str) -> ExportOptions:
        """Validate ``values``: an unknown key or a wrong type is one ``InputError`` line naming ``where``."""
        unknown = [key for key in values if key not in cls.model_fields]
        if unknown:
            keys = ", ".join(f"'{key}'" for key in unknown)
            raise InputError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {keys}; valid keys: "
                             f"{', '.join(cls.model_fields)}", hint=DOCS_HINT)
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}' {_shown(e['input'])}: "
                                 f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
            raise InputError(f"{where}: {problems}", hint=DOCS_HINT) from None

    @classmethod
    def merge(cls, given: Mapping[str, Any], project: ExportOptions | None = None,
              where: str = "export options") -> ExportOptions:
        """``given`` (``None`` = not given) over the fields ``project`` (edgekit.toml) sets, over the defaults."""
        values = {key: getattr(project, key) for key in project.model_fields_set} if project else {}
        values.update({key: value for key, value in given.items()
                       if value is not None or key not in cls.model_fields})  # an unknown key is refused by name
        return cls.parse(values, where)

    def pipeline_kwargs(self) -> dict[str, Any]:
        """The keyword arguments ``exporter.pipeline.export`` takes (all but the model and progress)."""
        return dict(
            target=self.target, out=self.out, inputs=self.inputs, outputs=self.outputs, calib=self.calib,
            val=self.val, tokenizer=self.tokenizer, preprocess=self.preprocess,
            format=self.format, dynamic_batch=self.dynamic_batch,
            simplify=self.simplify,
            accuracy={"cosine_min": self.cosine_min, "top1_agreement_min": self.top1_min,
                      "max_abs_error": self.max_abs_error},
            benchmark=self.benchmark, rescue=self.rescue, overwrite=self.overwrite, agent=self.agent,
            token_file=self.token_file, rescue_budget_s=self.rescue_budget_s,
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return f"= {text}" if len(text) <= 60 else f"= {text[:57]}..."


def describe(name: str) -> str:
    """The help text of option ``name`` (the CLI's ``help=``)."""
    return ExportOptions.model_fields[name].description or ""


# The keys of the profile's [accuracy] table that ``edgekit.export(accuracy={...})`` still accepts.
_ACCURACY_KEYS = {"cosine_min": "cosine_min", "top1_agreement_min": "top1_min", "max_abs_error": "max_abs_error"}


def load_project(folder: Path | None = None) -> tuple[ExportOptions, Path] | None:
    """``edgekit.toml`` in ``folder`` (default: cwd) as ``ExportOptions``, its paths made absolute (only the keys
    it sets are in ``model_fields_set``); None if there is none. An unknown key or a wrong type is an
    ``InputError`` naming the file and the key."""
    project = read_project(folder)
    if project is None:
        return None
    values, path = project
    return ExportOptions.parse(values, str(path)), path


def resolve_options(model: Any = None, /, **given: Any) -> ExportOptions:
    """The options of one export: ``given`` (``None`` = not given) over ./edgekit.toml over the defaults."""
    project = load_project()
    options = ExportOptions.merge({"model": model, **given}, project[0] if project else None)
    if not options.model:
        raise InputError("no MODEL given and no 'model' in ./edgekit.toml",
                         hint="pass MODEL (file.py:factory or model.onnx) or run where an edgekit.toml names it")
    return options


def export(model: Any = None, target: Any = None, *, progress=None, accuracy: Mapping[str, float | None] | None = None,
           token: str | None = None, **options: Any):
    """Export ``model`` for ``target`` into an artifact folder: ``edgekit.export``, what ``edgekit export`` runs.

    ``options`` are ``ExportOptions`` fields (see ``edgekit export --help`` or docs/export.md); each one given
    (not ``None``) wins over ./edgekit.toml, which wins over the defaults. ``accuracy`` is the older spelling of
    the budget overrides, keyed like a profile's [accuracy] table; ``token`` is the agent's token itself (kept out
    of edgekit.toml on purpose: use ``token_file`` there). Returns ``ExportResult``; raises what the pipeline raises
    (``AccuracyError``, ``ExportError``, ``InputError``…).
    """
    from .pipeline import export as run_pipeline

    for key, value in (accuracy or {}).items():
        name = _ACCURACY_KEYS.get(key)
        if name is None:
            raise InputError(f"accuracy: unknown budget '{key}'; valid: {', '.join(_ACCURACY_KEYS)}",
                             hint=f"or pass {', '.join(_ACCURACY_KEYS.values())} directly")
        if value is not None and options.get(name) is not None:
            raise InputError(f"accuracy['{key}'] and {name} both given; give one")
        if value is not None:
            options[name] = value
    opts = resolve_options(model, target=target, **options)
    return run_pipeline(opts.model, progress=progress, token=token, **opts.pipeline_kwargs())
