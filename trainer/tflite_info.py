"""The one view of a .tflite file that every stage uses: schema reading, the graph (tensors with
their constant data, operators with their options), quantization, params, MACs, weight sparsity
and the seed study's metric.

Two shapes of the same reading (`read`): `Graph` (numpy arrays and option objects, what the AOT
generator lowers; trainer.aot.graph re-exports it) and `ModelInfo` (`parse`/`inspect`: plain
tuples and costs, what inspect, quantize, evaluate and export report).

Parsing uses the flatbuffer schema module shipped inside the `tflite-micro` wheel, i.e. the same
schema the TFLM reference interpreter was built from, so no offsets are written by hand here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from nanocore.errors import UserError

_TFLITE_IDENTIFIER = b"TFL3"  # file_identifier of the TFLite schema, bytes 4..7 of the file

# Tensor type name (TensorType, lower case) -> numpy dtype of its constant data.
NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "int64": np.int64,
                "int16": np.int16, "int8": np.int8, "float16": np.float16, "bool": np.bool_}


def schema():
    """The flatbuffer schema module of the tflite-micro wheel (imported lazily: it is large and
    most callers of the package do not need it)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def enum_names(enum_cls) -> dict[int, str]:
    """Value -> name of a generated schema enum class (BuiltinOperator, TensorType, ...)."""
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class Tensor:
    """One tensor of the main subgraph. `shape` in elements; `scale` float32 per channel (or one
    entry, empty when unquantized), `zero_point` int64; `data` holds the constant buffer as a
    numpy array (None for activations, and for buffers stored after the flatbuffer or of a type
    numpy cannot hold); `buffer_bytes` is the size of the constant buffer (0: activation)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None
    buffer_bytes: int = 0

    @property
    def elements(self) -> int:
        """Number of elements (1 for a scalar)."""
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes of one element times the element count."""
        return self.elements * np.dtype(NUMPY_DTYPES[self.dtype]).itemsize

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    """One operator: builtin name, tensor indices (-1: optional input absent), options object."""

    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: object
    opcode_index: int


@dataclass
class Graph:
    """Subgraph 0 of a model (the one TFLM runs), plus the parsed model object (for the model's
    version, description, operator-code table and for building probe models)."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    model: object = field(repr=False)

    @property
    def opcode_names(self) -> tuple[str, ...]:
        """The operator-code table's op names, in its order (what ops index)."""
        names = enum_names(schema().BuiltinOperator)
        return tuple(_op_name(c, names) for c in self.model.operatorCodes or [])


def _op_name(opcode, names: dict[int, str]) -> str:
    # builtinCode is 0 (ADD) in files written before schema v3a; deprecatedBuiltinCode holds the
    # real code there (values < 127), so the larger of the two is the op (as TFLM's GetBuiltinCode).
    code = max(int(opcode.builtinCode), int(opcode.deprecatedBuiltinCode))
    name = names.get(code, f"BUILTIN_{code}")
    if name == "CUSTOM":
        custom = opcode.customCode.decode() if opcode.customCode else "?"
        return f"CUSTOM:{custom}"
    return name


def _tensor(i: int, t, buffers: list, type_names: dict[int, str]) -> Tensor:
    q = t.quantization
    scale = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
    zp = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [],
                    dtype=np.int64)
    shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
    dtype = type_names.get(t.type, f"TYPE_{t.type}").lower()
    data, nbytes = None, 0
    if 0 < t.buffer < len(buffers):  # buffer 0 is the schema's empty sentinel
        b = buffers[t.buffer]
        if b.data is not None and len(b.data) > 0:
            nbytes = len(b.data)
            if dtype in NUMPY_DTYPES:
                raw = np.asarray(b.data, dtype=np.uint8).tobytes()
                data = np.frombuffer(raw, dtype=NUMPY_DTYPES[dtype]).reshape(shape if shape else ())
        elif b.data is None and b.offset > 1:  # large models keep buffers after the flatbuffer
            nbytes = int(b.size)
    return Tensor(index=i, name=t.name.decode(errors="replace") if t.name else "", shape=shape,
                  dtype=dtype, scale=scale, zero_point=zp,
                  quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
                  data=data, buffer_bytes=nbytes)


def read(tflite_bytes: bytes) -> Graph:
    """Read a .tflite flatbuffer (the whole file) into a Graph of its subgraph 0, judging nothing.

    Raises:
        UserError: not a TFLite flatbuffer, or truncated/damaged. One line each.
    """
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise UserError(
            "not a TFLite flatbuffer (missing 'TFL3' identifier); give a .tflite file "
            "written by `python -m trainer quantize`"
        )
    s = schema()
    try:
        model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
        sg = model.subgraphs[0]
        type_names = enum_names(s.TensorType)
        op_names = enum_names(s.BuiltinOperator)
        buffers = model.buffers or []
        tensors = [_tensor(i, t, buffers, type_names) for i, t in enumerate(sg.tensors or [])]
        ops = [Op(i, _op_name(model.operatorCodes[o.opcodeIndex], op_names),
                  [int(x) for x in (o.inputs if o.inputs is not None else [])],
                  [int(x) for x in (o.outputs if o.outputs is not None else [])],
                  o.builtinOptions, int(o.opcodeIndex))
               for i, o in enumerate(sg.operators or [])]
    # A damaged flatbuffer fails anywhere inside the generated code, with any exception type.
    except Exception as exc:  # noqa: BLE001
        raise UserError(
            f"truncated or damaged TFLite flatbuffer ({type(exc).__name__}); re-export it"
        ) from None
    return Graph(tensors, ops, [int(x) for x in (sg.inputs if sg.inputs is not None else [])],
                 [int(x) for x in (sg.outputs if sg.outputs is not None else [])], model)


# Ops whose constant inputs 1 (weights) and 2 (bias) are trainable parameters.
WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph.

    `shape` is in elements (NHWC for activations, [out, ...] for weights); `scale`/`zero_point`
    are empty for unquantized tensors and hold one entry per channel of `quantized_dimension`
    for per-channel quantization. `nbytes` is the size of its constant buffer (0: activation).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int
    is_constant: bool
    nbytes: int

    @property
    def elements(self) -> int:
        """Number of elements (product of the shape; 1 for a scalar)."""
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def per_channel(self) -> bool:
        """True when the tensor carries more than one quantization scale."""
        return len(self.scale) > 1


@dataclass(frozen=True)
class OpInfo:
    """One operator in execution order, with its cost.

    `macs` counts multiply-accumulates for one inference (batch as in the model, normally 1);
    `params` counts elements of constant weight and bias inputs; `weights_per_channel` is None
    for ops without weights.
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int
    params: int
    weights_per_channel: bool | None


@dataclass(frozen=True)
class ModelInfo:
    """What `inspect` found in a .tflite file (subgraph 0, the one TFLM runs)."""

    sha256: str
    flatbuffer_bytes: int
    schema_version: int
    description: str
    ops: tuple[OpInfo, ...]
    op_names: tuple[str, ...]  # builtin names in execution order
    unique_ops: tuple[str, ...]  # each op once, in order of first use
    tensors: tuple[TensorInfo, ...]
    input: TensorInfo
    output: TensorInfo
    params: int
    macs: int
    num_subgraphs: int
    num_inputs: int  # of subgraph 0; `inspect` refuses anything but 1 and 1
    num_outputs: int
    opcode_names: tuple[str, ...]  # the operator-code table, in its order (what ops index)

    @property
    def seed_metric(self) -> float:
        """`seed_metric(params, flatbuffer_bytes)` of this model (unrounded)."""
        return seed_metric(self.params, self.flatbuffer_bytes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output.shape

    @property
    def input_dtype(self) -> str:
        return self.input.dtype

    @property
    def output_dtype(self) -> str:
        return self.output.dtype

    @property
    def input_scale(self) -> float:
        return self.input.scale[0] if self.input.scale else 0.0

    @property
    def input_zero_point(self) -> int:
        return self.input.zero_point[0] if self.input.zero_point else 0

    @property
    def output_scale(self) -> float:
        return self.output.scale[0] if self.output.scale else 0.0

    @property
    def output_zero_point(self) -> int:
        return self.output.zero_point[0] if self.output.zero_point else 0

    @property
    def per_channel_dense(self) -> bool:
        """True if any FULLY_CONNECTED op has per-channel weights (old TFLM runs them wrong)."""
        return any(o.name == "FULLY_CONNECTED" and o.weights_per_channel for o in self.ops)

    @property
    def per_channel_ops(self) -> tuple[str, ...]:
        """Names of the weighted ops whose weights are per-channel, each once."""
        return tuple(dict.fromkeys(o.name for o in self.ops if o.weights_per_channel))

    @property
    def float_ops(self) -> tuple[str, ...]:
        """Ops (each once, execution order) other than DEQUANTIZE with a float32 output.

        In an int8 in/out model these compute in float32 between a DEQUANTIZE and a QUANTIZE
        (the converter does this for activations it cannot quantize, e.g. ELU).
        """
        return tuple(dict.fromkeys(
            o.name for o in self.ops
            if o.name != "DEQUANTIZE" and any(self.tensors[i].dtype == "float32" for i in o.outputs)
        ))

    @property
    def dense_weight_scales(self) -> list[int]:
        """Number of quantization scales of each FULLY_CONNECTED weight tensor (1 = per-tensor)."""
        return [len(self.tensors[o.inputs[1]].scale) for o in self.ops
                if o.name == "FULLY_CONNECTED"]


def _macs(name: str, ins: list[TensorInfo | None], outs: list[TensorInfo]) -> int:
    if not outs or outs[0] is None:
        return 0
    out = outs[0]
    w = ins[1] if len(ins) > 1 else None
    if w is None:
        return 0
    if name == "FULLY_CONNECTED":
        # weights [units, depth]: every output element needs `depth` MACs
        return out.elements * w.shape[-1]
    if name == "CONV_2D":
        # filter [out_ch, kh, kw, in_ch]
        return out.elements * int(np.prod(w.shape[1:]))
    if name == "DEPTHWISE_CONV_2D":
        # filter [1, kh, kw, out_ch]: one kh*kw window per output element
        return out.elements * w.shape[1] * w.shape[2]
    if name == "TRANSPOSE_CONV":
        # filter [out_ch, kh, kw, in_ch]; each input element scatters to kh*kw*out_ch outputs
        inp = ins[2] if len(ins) > 2 else None
        return inp.elements * int(np.prod(w.shape[:3])) if inp is not None else 0
    return 0


def inspect(tflite_bytes: bytes, require_int8: bool = True) -> ModelInfo:
    """Parse a .tflite flatbuffer and check it is a model nano-tflm can take.

    Args:
        tflite_bytes: the whole file.
        require_int8: refuse (UserError) a model whose single input and output are not int8.

    Raises:
        UserError: not a TFLite flatbuffer, not one input and one output, or (require_int8) not
            int8 in and out. One line each.
    """
    info = parse(tflite_bytes)
    if info.num_inputs != 1 or info.num_outputs != 1:
        raise _io_count_error(info.num_inputs, info.num_outputs)
    if require_int8 and (info.input.dtype != "int8" or info.output.dtype != "int8"):
        raise UserError(
            f"model input is {info.input.dtype} and output is {info.output.dtype}; nano-tflm "
            "needs int8 in and out: quantize with `python -m trainer quantize` (full-integer, "
            "int8 I/O)"
        )
    return info


def _io_count_error(n_in: int, n_out: int) -> UserError:
    return UserError(
        f"model has {n_in} inputs and {n_out} outputs; nano-tflm needs exactly "
        "one of each (an image in, class scores out)"
    )


def parse(tflite_bytes: bytes) -> ModelInfo:
    """Parse a .tflite flatbuffer without judging it (any tensor types, any number of inputs and
    outputs; `input`/`output` are the first of each). For checks that report what is wrong
    (trainer.quantize.check_int8); `inspect` is this plus nano-tflm's requirements.

    Raises:
        UserError: not a TFLite flatbuffer, or it has no input or no output.
    """
    data = bytes(tflite_bytes)
    graph = read(data)
    model = graph.model
    tensors = [_tensor_info(t) for t in graph.tensors]

    def tensor(idx: int) -> TensorInfo | None:
        return tensors[idx] if 0 <= idx < len(tensors) else None  # -1: optional input absent

    ops: list[OpInfo] = []
    for op in graph.ops:
        ins = [tensor(x) for x in op.inputs]
        outs = [tensor(x) for x in op.outputs]
        params = 0
        per_channel = None
        if op.name in WEIGHTED_OPS:
            # TRANSPOSE_CONV's inputs are (output_shape, weights, input, bias)
            w_pos, b_pos = (1, 3) if op.name == "TRANSPOSE_CONV" else (1, 2)
            for pos in (w_pos, b_pos):
                t = ins[pos] if len(ins) > pos else None
                if t is not None and t.is_constant:
                    params += t.elements
            w = ins[w_pos] if len(ins) > w_pos else None
            per_channel = bool(w.per_channel) if w is not None else None
        ops.append(OpInfo(index=op.index, name=op.name, inputs=tuple(op.inputs),
                          outputs=tuple(op.outputs), macs=_macs(op.name, ins, outs),
                          params=params, weights_per_channel=per_channel))

    if not graph.inputs or not graph.outputs:
        raise _io_count_error(len(graph.inputs), len(graph.outputs))
    names = tuple(o.name for o in ops)
    return ModelInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        flatbuffer_bytes=len(data),
        schema_version=int(model.version),
        description=model.description.decode(errors="replace") if model.description else "",
        ops=tuple(ops),
        op_names=names,
        unique_ops=tuple(dict.fromkeys(names)),
        tensors=tuple(tensors),
        input=tensors[graph.inputs[0]],
        output=tensors[graph.outputs[0]],
        params=sum(o.params for o in ops),
        macs=sum(o.macs for o in ops),
        num_subgraphs=len(model.subgraphs),
        num_inputs=len(graph.inputs),
        num_outputs=len(graph.outputs),
        opcode_names=graph.opcode_names,
    )


def _tensor_info(t: Tensor) -> TensorInfo:
    return TensorInfo(index=t.index, name=t.name, shape=t.shape, dtype=t.dtype,
                      scale=tuple(float(v) for v in t.scale),
                      zero_point=tuple(int(v) for v in t.zero_point),
                      quantized_dimension=t.quantized_dimension,
                      is_constant=t.buffer_bytes > 0, nbytes=t.buffer_bytes)


def seed_metric(params: int, flatbuffer_bytes: int) -> float:
    """The seed study's memory metric: parameters + flatbuffer size in KiB (bytes / 1024),
    unrounded. Both from the model it describes (the sweep also pairs the int8 model's params
    with the float flatbuffer's bytes)."""
    return int(params) + flatbuffer_bytes / 1024.0


DIGIT_CLASSES = 10  # MNIST: one score per digit


def check_digit_classifier(tflite_bytes: bytes, name: str = "the model") -> ModelInfo:
    """`inspect` plus what evaluate and the bench need: one int8 input of 28x28 pixels and
    one output of the 10 digit classes. A corrupt or non-TFLite file, or another model, is a
    one-line UserError naming ``name``; call it before any dataset is loaded."""
    try:
        info = inspect(tflite_bytes)
    except UserError as exc:
        raise UserError(f"{name}: {exc}") from None
    if info.output.elements != DIGIT_CLASSES:
        raise UserError(f"{name}: the model has {info.output.elements} outputs "
                        f"(shape {list(info.output.shape)}), not the {DIGIT_CLASSES} digit "
                        "classes: give an MNIST classifier from `python -m trainer quantize`")
    if info.input.elements != 28 * 28:
        raise UserError(f"{name}: the model takes {info.input.elements} input values "
                        f"(shape {list(info.input.shape)}), not a 28x28 image")
    return info


def inspect_file(path) -> ModelInfo:
    """`inspect` a file on disk; a missing or unreadable file is a UserError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    return inspect(data)


def summary(info: ModelInfo) -> str:
    """A short multi-line human summary (for CLIs and logs)."""
    lines = [
        (
            f"sha256 {info.sha256[:16]}  {info.flatbuffer_bytes} bytes  params {info.params}  "
            f"MACs {info.macs}"
        ),
        (
            f"input  {info.input.dtype} {list(info.input_shape)} "
            f"scale {info.input_scale:.6g} zp {info.input_zero_point}"
        ),
        (
            f"output {info.output.dtype} {list(info.output_shape)} "
            f"scale {info.output_scale:.6g} zp {info.output_zero_point}"
        ),
    ]
    for o in info.ops:
        pc = "" if o.weights_per_channel is None else (
            " per-channel" if o.weights_per_channel else " per-tensor"
        )
        lines.append(f"  {o.index:2d} {o.name:<20s} MACs {o.macs:>9d} params {o.params:>7d}{pc}")
    return "\n".join(lines)


def int8_weight_sparsity(tflite_bytes: bytes) -> float:
    """Fraction of exactly-zero weight bytes (0..1) in the constant weight tensors (input 1) of
    the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops, each tensor once: what is left of a
    pruned model's zeros after int8 quantization (symmetric weights: zero point 0, so a zero
    weight is byte 0)."""
    graph = read(tflite_bytes)
    zeros = total = 0
    seen: set[int] = set()
    for op in graph.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") \
                or len(op.inputs) < 2:
            continue
        idx = op.inputs[1]
        if idx < 0 or idx in seen:
            continue
        seen.add(idx)
        data = graph.tensors[idx].data
        if data is None:
            continue
        w = np.frombuffer(data.tobytes(), dtype=np.uint8)
        zeros += int(np.sum(w == 0))
        total += w.size
    return zeros / total if total else 0.0
