"""Read a .tflite flatbuffer into a small graph (tensors, operators in execution order).

Parsing uses the object API of the schema module shipped in the `tflite-micro` wheel (the schema
the TFLM reference was built from); no byte offsets are written by hand.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from nanocore.errors import UserError

_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
           7: "int16", 9: "int8"}
_NUMPY = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "int64": np.int64,
          "int16": np.int16, "int8": np.int8, "float16": np.float16, "bool": np.bool_}


def schema():
    """The flatbuffer schema module of the tflite-micro wheel (imported lazily: it is large)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class Tensor:
    """One tensor of the main subgraph. `shape` in elements; `scale` float32 per channel (or one
    entry), `zero_point` int64; `data` holds the constant buffer as a numpy array (None for
    activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int
    data: np.ndarray | None

    @property
    def elements(self) -> int:
        """Number of elements (1 for a scalar)."""
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes of one element times the element count."""
        return self.elements * np.dtype(_NUMPY[self.dtype]).itemsize

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
    """The main subgraph of a model, plus the parsed model object (for building probe models)."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    model: object = field(repr=False)


def load(tflite_bytes: bytes) -> Graph:
    """Parse a .tflite flatbuffer (bytes) into a Graph. Raises UserError if it is not one."""
    if len(tflite_bytes) < 8 or tflite_bytes[4:8] != b"TFL3":
        raise UserError("not a TFLite flatbuffer (missing TFL3 identifier); pass a .tflite file")
    s = schema()
    model = s.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise UserError("the AOT backend supports models with exactly one subgraph; "
                        "use the tflm backend")
    names = _enum_names(s.BuiltinOperator)
    sg = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tensors):
        dtype = _DTYPES.get(t.type, f"type{t.type}")
        q = t.quantization
        scale = np.asarray(q.scale if q is not None and q.scale is not None else [],
                           dtype=np.float32)
        zp = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [],
                        dtype=np.int64)
        qdim = int(q.quantizedDimension) if q is not None else 0
        data = None
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            data = np.frombuffer(raw, dtype=_NUMPY[dtype]).reshape(shape if shape else ())
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, name, shape, dtype, scale, zp, qdim, data))
    ops = []
    for i, o in enumerate(sg.operators):
        oc = model.operatorCodes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = names.get(code, f"BUILTIN_{code}")
        if code == s.BuiltinOperator.CUSTOM:
            cname = oc.customCode.decode() if oc.customCode else "?"
            name = f"CUSTOM({cname})"
        ops.append(Op(i, name, [int(x) for x in o.inputs], [int(x) for x in o.outputs],
                      o.builtinOptions, int(o.opcodeIndex)))
    return Graph(tensors, ops, [int(x) for x in sg.inputs], [int(x) for x in sg.outputs], model)


def single_op_model(graph: Graph, op: Op, shapes: dict[int, tuple[int, ...]]) -> bytes:
    """A .tflite holding only `op` (same options, quantization and constant inputs), with the
    activation tensors resized to `shapes` (tensor index -> new shape). Used to probe the TFLM
    reference for the exact output of value-wise ops at generation time."""
    return sub_model(graph, [op], shapes)


def sub_model(graph: Graph, ops: list[Op], shapes: dict[int, tuple[int, ...]]) -> bytes:
    """A .tflite holding the chain `ops` (in order; same options, quantization and constant
    inputs). Its inputs are the non-constant tensors the chain reads but does not produce, its
    output the last op's outputs; tensors in `shapes` are resized."""
    import flatbuffers

    s = schema()
    src = graph.model
    sg = src.subgraphs[0]
    m = s.ModelT()
    m.version = 3
    m.description = "nano-tflm aot probe"
    m.operatorCodes = []
    code_map: dict[int, int] = {}
    m.buffers = [s.BufferT()]
    nsg = s.SubGraphT()
    nsg.tensors = []
    remap: dict[int, int] = {}
    produced = {t for o in ops for t in o.outputs}
    for o in ops:
        for ti in list(o.inputs) + list(o.outputs):
            if ti < 0 or ti in remap:
                continue
            t = copy.deepcopy(sg.tensors[ti])
            t.shapeSignature = None
            if ti in shapes:
                t.shape = list(shapes[ti])
            if graph.tensors[ti].is_constant:
                m.buffers.append(copy.deepcopy(src.buffers[sg.tensors[ti].buffer]))
                t.buffer = len(m.buffers) - 1
            else:
                t.buffer = 0
            remap[ti] = len(nsg.tensors)
            nsg.tensors.append(t)
    nsg.operators = []
    for o in ops:
        if o.opcode_index not in code_map:
            code_map[o.opcode_index] = len(m.operatorCodes)
            m.operatorCodes.append(copy.deepcopy(src.operatorCodes[o.opcode_index]))
        no = s.OperatorT()
        no.opcodeIndex = code_map[o.opcode_index]
        no.inputs = [remap[i] if i >= 0 else -1 for i in o.inputs]
        no.outputs = [remap[i] for i in o.outputs]
        srco = sg.operators[o.index]
        no.builtinOptionsType = srco.builtinOptionsType
        no.builtinOptions = copy.deepcopy(srco.builtinOptions)
        nsg.operators.append(no)
    ins: list[int] = []
    for o in ops:
        for i in o.inputs:
            if i >= 0 and not graph.tensors[i].is_constant and i not in produced and \
                    remap[i] not in ins:
                ins.append(remap[i])
    nsg.inputs = ins
    nsg.outputs = [remap[i] for i in ops[-1].outputs]
    m.subgraphs = [nsg]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
