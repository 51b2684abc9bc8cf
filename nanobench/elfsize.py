"""Flash and RAM footprint of a firmware ELF, with a model/runtime/application breakdown.

Totals follow the Berkeley convention of `arm-none-eabi-size`: for every allocated section,
`text` = read-only (code, rodata, vector table, exception index), `data` = writable with contents
(its initial values live in flash and are copied to RAM at boot), `bss` = writable without
contents (zeroed RAM, including stack and heap reservations the linker script declares).
So `flash_bytes = text + data` and `ram_bytes = data + bss`.

The breakdown attributes every sized symbol to the source file it came from:
1. DWARF (`-g` builds): the compilation unit holding the function or the variable's address;
2. otherwise, for local symbols, the `STT_FILE` symbol that precedes them in the symbol table;
3. otherwise a name rule (`g_model*`, `model_*`, ... are the model); anything else without a
   file is library code (newlib, libgcc) and counts as runtime.
Stack and heap sections the linker script reserves are `stack`; bytes no symbol covers
(alignment, vector table, linker-generated tables) are `other`, so each breakdown sums to the
totals.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from nanocore.errors import UserError

log = logging.getLogger(__name__)

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

CATEGORIES = ("model", "runtime", "application", "stack", "other")
# Linker-reserved RAM without symbols: the stack (and a heap, if the script declares one).
_STACK_SECTION = re.compile(r"stack|heap", re.IGNORECASE)

# Source paths (as DWARF or STT_FILE name them) -> category. First match wins.
_FILE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|/)(model_data|model_aot|model_selftest|model_meta)\.|lib/model/"), "model"),
    (re.compile(r"backend_(aot|tflm)|tensorflow|tflite|third_party|cmsis|flatbuffers|kernels?/"),
     "runtime"),
    (re.compile(r"newlib|libgcc|libc|/usr/"), "runtime"),
)
# Symbols without a known source file.
_MODEL_NAME = re.compile(r"^(g_model|model_|k_?model|kModel|g_weights|weights_)")


@dataclass(frozen=True)
class Footprint:
    """Footprint of one ELF, in bytes.

    `breakdown[category]` is `{"flash": bytes, "ram": bytes}` for each of CATEGORIES;
    `sections` maps a section name to its size and kind ("text", "data" or "bss").
    """

    path: str
    text_bytes: int
    rodata_bytes: int
    data_bytes: int
    bss_bytes: int
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    sections: dict[str, dict[str, int | str]] = field(default_factory=dict)
    attribution: str = "names"

    @property
    def flash_bytes(self) -> int:
        """Bytes in flash: code + read-only data + initial values of `.data`."""
        return self.text_bytes + self.data_bytes

    @property
    def ram_bytes(self) -> int:
        """Bytes of RAM reserved statically: `.data` + `.bss` (incl. declared stack/heap)."""
        return self.data_bytes + self.bss_bytes

    def as_dict(self) -> dict:
        """JSON-ready dict (totals, breakdown, sections)."""
        return {
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "text_bytes": self.text_bytes,
            "rodata_bytes": self.rodata_bytes,
            "data_bytes": self.data_bytes,
            "bss_bytes": self.bss_bytes,
            "breakdown": self.breakdown,
            "attribution": self.attribution,
            "sections": self.sections,
        }


def _section_kind(flags: int, sh_type: str) -> str | None:
    if not flags & SHF_ALLOC:
        return None
    if sh_type == "SHT_NOBITS":
        return "bss"
    if flags & SHF_WRITE:
        return "data"
    return "text"


def classify_file(path: str) -> str:
    """Category ("model", "runtime", "application") of a source file path."""
    p = path.replace("\\", "/")
    for pattern, category in _FILE_RULES:
        if pattern.search(p):
            return category
    return "application"


def _dwarf_files(elf) -> dict[int, str]:
    """Map function entry / variable addresses to their compilation unit's file name."""
    from elftools.common.exceptions import DWARFError, ELFError, ELFParseError

    out: dict[int, str] = {}
    if not elf.has_dwarf_info():
        return out
    try:
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            top = cu.get_top_DIE()
            name_attr = top.attributes.get("DW_AT_name")
            if name_attr is None:
                continue
            name = name_attr.value.decode(errors="replace")
            for die in cu.iter_DIEs():
                if die.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in die.attributes:
                    out.setdefault(die.attributes["DW_AT_low_pc"].value & ~1, name)
                elif die.tag == "DW_TAG_variable" and "DW_AT_location" in die.attributes:
                    loc = die.attributes["DW_AT_location"]
                    value = loc.value
                    # A static variable's location is one DW_OP_addr (0x03) + address.
                    if isinstance(value, list) and len(value) == 1 + cu["address_size"] \
                            and value[0] == 0x03:
                        addr = int.from_bytes(bytes(value[1:]), "little")
                        out.setdefault(addr, name)
    except (ELFError, ELFParseError, DWARFError, KeyError, ValueError, IndexError) as exc:
        # Malformed or unsupported DWARF: fall back to the symbol table.
        log.warning("DWARF in %s not usable for the breakdown (%s)", elf.stream.name, exc)
        return {}
    return out


def footprint(elf_path: str | Path) -> Footprint:
    """Read an ELF and return its Footprint. Raises UserError if it is missing or not an ELF."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    path = Path(elf_path)
    if not path.is_file():
        raise UserError(f"ELF not found: {path} (build the firmware first, or drop --elf)")
    with path.open("rb") as fh:
        try:
            elf = ELFFile(fh)
        except ELFError as exc:
            raise UserError(f"{path} is not an ELF file ({exc})") from None
        totals = {"text": 0, "data": 0, "bss": 0}
        rodata = 0
        reserved = 0  # stack/heap sections
        sections: dict[str, dict[str, int | str]] = {}
        # (start, end, kind) of each allocated section, to place symbols.
        spans: list[tuple[int, int, str]] = []
        for sec in elf.iter_sections():
            kind = _section_kind(sec["sh_flags"], sec["sh_type"])
            size = sec["sh_size"]
            if kind is None or size == 0:
                continue
            totals[kind] += size
            if kind == "text" and not sec["sh_flags"] & SHF_EXECINSTR:
                rodata += size
            sections[sec.name] = {"kind": kind, "size": size, "addr": sec["sh_addr"]}
            if kind == "bss" and _STACK_SECTION.search(sec.name):
                reserved += size
                continue
            spans.append((sec["sh_addr"], sec["sh_addr"] + size, kind))

        dwarf = _dwarf_files(elf)
        attribution = "dwarf" if dwarf else "symbols"
        used = {c: {"flash": 0, "ram": 0} for c in CATEGORIES}
        symtab = elf.get_section_by_name(".symtab")
        seen: set[tuple[int, int]] = set()
        if symtab is not None:
            current_file: str | None = None
            for sym in symtab.iter_symbols():
                st_type = sym["st_info"]["type"]
                if st_type == "STT_FILE":
                    current_file = sym.name
                    continue
                if st_type not in ("STT_FUNC", "STT_OBJECT") or sym["st_size"] == 0:
                    continue
                addr = sym["st_value"] & ~1 if st_type == "STT_FUNC" else sym["st_value"]
                key = (addr, sym["st_size"])
                if key in seen:  # aliases (e.g. weak + strong names) count once
                    continue
                seen.add(key)
                kind = next((k for lo, hi, k in spans if lo <= addr < hi), None)
                if kind is None:
                    continue
                src = dwarf.get(addr)
                if src is None and sym["st_info"]["bind"] == "STB_LOCAL":
                    src = current_file
                if src is not None:
                    category = classify_file(src)
                elif _MODEL_NAME.match(sym.name):
                    category = "model"
                else:
                    category = "runtime"
                size = sym["st_size"]
                if kind in ("text", "data"):
                    used[category]["flash"] += size
                if kind in ("data", "bss"):
                    used[category]["ram"] += size
        flash = totals["text"] + totals["data"]
        ram = totals["data"] + totals["bss"]
        used["stack"]["ram"] = reserved
        used["other"]["flash"] = max(0, flash - sum(v["flash"] for v in used.values()))
        used["other"]["ram"] = max(0, ram - sum(v["ram"] for v in used.values()))
    return Footprint(
        path=str(path),
        text_bytes=totals["text"],
        rodata_bytes=rodata,
        data_bytes=totals["data"],
        bss_bytes=totals["bss"],
        breakdown=used,
        sections=sections,
        attribution=attribution,
    )
