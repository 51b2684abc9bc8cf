"""The AOT generator's graph of a .tflite: the one view of trainer.tflite_info (`Graph`,
`Tensor`, `Op`, read once there), plus what only the generator needs: the one-subgraph check and
probe models built from a chain of ops.
"""

from __future__ import annotations

import copy

from nanocore.errors import UserError
from trainer.tflite_info import Graph, Op, Tensor, read, schema

__all__ = ["Graph", "Op", "Tensor", "load", "schema", "single_op_model", "sub_model"]


def load(tflite_bytes: bytes) -> Graph:
    """Parse a .tflite flatbuffer (bytes) into a Graph. Raises UserError if it is not one, or if
    it has more than one subgraph (the AOT backend runs subgraph 0 only)."""
    graph = read(tflite_bytes)
    if len(graph.model.subgraphs) != 1:
        raise UserError("the AOT backend supports models with exactly one subgraph; "
                        "use the tflm backend")
    return graph


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
