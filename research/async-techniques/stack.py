#!/usr/bin/env python3
"""Static worst-case stack of a function in a Thumb ELF, from `arm-none-eabi-objdump -d -C`.

frame(f) = 4 * registers pushed (push/stmdb sp!) + 8 per vpush'd D-register + every
`sub sp, #imm` in f.  depth(f) = frame(f) + max depth over callees (`bl`, `blx <sym>`, and `b.w`/`b`
to another symbol, i.e. tail calls, counted as calls: slightly pessimistic).  `blx rN` (indirect:
LLVM hoists memcpy/memset addresses into registers) counts as a call to the deepest
`memcpy/memset/memmove/__aeabi_mem*` routine.  No recursion expected (reported if found).
Usage: stack.py ELF FUNC_SUBSTRING...
"""
import re, subprocess, sys

def parse(elf):
    out = subprocess.run(["arm-none-eabi-objdump", "-d", "-C", "--no-show-raw-insn", elf],
                         capture_output=True, text=True, check=True).stdout
    funcs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            cur = m.group(1); funcs[cur] = {"frame": 0, "calls": set(), "indirect": False}
            continue
        if cur is None or "\t" not in line:
            continue
        ins = line.split("\t", 1)[1].split(";")[0].split("@")[0].strip()
        f = funcs[cur]
        m = re.match(r"^(push(?:\.w)?|stmdb(?:\.w)?\s+sp!,)\s*\{([^}]*)\}", ins)
        if m:
            f["frame"] += 4 * count_regs(m.group(2)); continue
        m = re.match(r"^vpush(?:\.\w+)?\s*\{([^}]*)\}", ins)
        if m:
            f["frame"] += 8 * count_regs(m.group(1)); continue
        m = re.match(r"^(?:sub|subw|sub\.w|subs)\s+sp,\s*(?:sp,\s*)?#(\d+)", ins)
        if m:
            f["frame"] += int(m.group(1)); continue
        if re.match(r"^(?:sub|sub\.w)\s+sp,\s*(?:sp,\s*)?r\d+", ins):
            print(f"warning: {cur}: variable sp adjust `{ins}` not counted", file=sys.stderr)
        m = re.match(r"^(bl|blx|b\.w|b)\s+[0-9a-f]+\s+<(.*)>$", ins)
        if m:
            tgt = m.group(2)
            if not re.search(r"\+0x[0-9a-f]+$", tgt) and tgt != cur:
                f["calls"].add(tgt)
            continue
        if re.match(r"^blx\s+r\d+", ins):
            f["indirect"] = True
    return funcs

def count_regs(s):
    n = 0
    for part in s.split(","):
        part = part.strip()
        m = re.match(r"^([a-z]+)(\d+)-[a-z]+(\d+)$", part)
        n += int(m.group(3)) - int(m.group(2)) + 1 if m else 1
    return n

def depth(funcs, name, memo, stack=()):
    if name in memo:
        return memo[name]
    if name in stack:
        print(f"warning: recursion through {name}", file=sys.stderr); return 0
    f = funcs.get(name)
    if f is None:
        return 0
    callees = list(f["calls"])
    if f["indirect"]:
        callees += [n for n in funcs if re.match(r"^(__aeabi_mem|memcpy|memset|memmove)", n)]
    best, path = 0, []
    for c in callees:
        d, p = depth(funcs, c, memo, stack + (name,))
        if d > best:
            best, path = d, p
    memo[name] = (f["frame"] + best, [(name, f["frame"])] + path)
    return memo[name]

if __name__ == "__main__":
    elf, pats = sys.argv[1], sys.argv[2:]
    funcs = parse(elf); memo = {}
    for pat in pats:
        names = [n for n in funcs if n.endswith(pat)]
        for n in names:
            d, p = depth(funcs, n, memo)
            print(f"{n}: {d} B   path: " + " -> ".join(f"{a.split('::')[-1][:40]}({b})" for a, b in p))
