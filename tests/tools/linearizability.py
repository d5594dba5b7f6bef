#!/usr/bin/env python3
"""Checks that a recorded history of operations on one register is
linearizable (Knossos/Porcupine-style; the Wing & Gong search with memo).

usage: linearizability.py HISTORY.jsonl

Each line of the history is one operation, as a client saw it:

  {"op": "inc", "arg": 3,      "invoke": T0, "complete": T1, "ok": true, "value": 42}
  {"op": "cas", "arg": [7, 8], "invoke": T0, "complete": T1, "ok": false}
  {"op": "read",               "invoke": T0, "complete": T1, "ok": true, "value": 7}

  inc   adds `arg` to the register (absent counts as 0) and returns the new
        value
  cas   sets the register to arg[1] if it is arg[0] (null: absent); `ok`
        says whether it did
  read  returns the register (null: absent)

Times are monotonic integers (nanoseconds). An operation whose outcome the
client does not know (a timeout, a node that died mid-call) has "ok": null
and no "complete": it may have taken effect at any time after it began, or
never. The history is linearizable if every operation whose outcome is
known can be put in one order, each at a moment between its invocation and
its completion, that the register's rules explain.

Exit status 0: linearizable. 1: not, with the longest prefix that could be
explained and the operations none of whose orders fit. 2: bad input.
"""
import json
import sys

INF = float("inf")


class BadInput(Exception):
    pass


def load_ops(raw, where="history"):
    """The operations `raw` (dicts as in the file), checked and numbered."""
    ops = []
    for n, o in enumerate(raw, 1):
        o = dict(o)
        if o.get("op") not in ("inc", "cas", "read"):
            raise BadInput("%s:%d: unknown op %r" % (where, n, o.get("op")))
        if "invoke" not in o:
            raise BadInput("%s:%d: no invoke time" % (where, n))
        if o.get("ok") is None:
            o["complete"] = INF
        elif "complete" not in o or o["complete"] < o["invoke"]:
            raise BadInput("%s:%d: a completed op needs complete >= invoke" % (where, n))
        o["id"] = len(ops)
        ops.append(o)
    return ops


def load(path):
    raw = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                raw.append(json.loads(line))
            except ValueError as e:
                raise BadInput("%s:%d: %s" % (path, n, e))
    return load_ops(raw, path)


def step(state, o):
    """The register after `o` from `state`, or None if `o`'s observed
    outcome cannot happen from `state`. Returns a list of possible states
    (an op of unknown outcome may branch)."""
    known = o.get("ok") is not None
    if o["op"] == "read":
        if not known:
            return [state]
        return [state] if state == o.get("value") else []
    if o["op"] == "inc":
        nxt = (state or 0) + o["arg"]
        if known and o["ok"] and o.get("value") != nxt:
            return []
        if known and not o["ok"]:
            return [state]  # an increment that says it failed wrote nothing
        return [nxt]
    expected, desired = o["arg"]
    applies = state == expected
    if not known:
        return [desired] if applies else [state]
    if o["ok"]:
        return [desired] if applies else []
    return [state] if not applies else []


def check(ops):
    """(True, None) or (False, (depth, culprits))."""
    ops = sorted(ops, key=lambda o: o["invoke"])
    determinate = [o for o in ops if o.get("ok") is not None]
    need = {o["id"] for o in determinate}
    # Iterative depth-first search over (linearized set, register state).
    seen = set()
    stack = [(frozenset(), None)]
    best = (0, [])
    while stack:
        done, state = stack.pop()
        if need <= done:
            return True, None
        key = (done, state)
        if key in seen:
            continue
        seen.add(key)
        pending = [o for o in ops if o["id"] not in done]
        # The next op must begin before every pending op of known outcome
        # has completed: nothing can be put after an op that ended first.
        horizon = min((o["complete"] for o in pending if o.get("ok") is not None), default=INF)
        # Ops of unknown outcome with the same kind and argument have the
        # same effect and never end: only the earliest begun of each group
        # is tried, since any order using a later one works with it too.
        # Without this, k such ops multiply the search by up to 2^k.
        candidates, groups = [], set()
        for o in pending:
            if o["invoke"] > horizon:
                continue
            if o.get("ok") is None:
                group = (o["op"], json.dumps(o.get("arg")))
                if group in groups:
                    continue
                groups.add(group)
            candidates.append(o)
        progressed = False
        for o in candidates:
            for nxt in step(state, o):
                progressed = True
                stack.append((done | {o["id"]}, nxt))
        if not progressed and len(done & need) >= best[0]:
            best = (len(done & need), [o["id"] for o in candidates])
    return False, best


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        ops = load(sys.argv[1])
    except (BadInput, OSError) as e:
        print("linearizability: %s" % e, file=sys.stderr)
        return 2
    ok, why = check(ops)
    known = sum(1 for o in ops if o.get("ok") is not None)
    if ok:
        print("linearizable: %d operations (%d of unknown outcome)" % (len(ops), len(ops) - known))
        return 0
    depth, culprits = why
    print("NOT linearizable: %d operations (%d of unknown outcome); at most %d of the known "
          "ones fit one order, and then none of these can come next:" % (len(ops), len(ops) - known,
                                                                       depth))
    for i in culprits[:10]:
        print("  " + json.dumps({k: v for k, v in ops[i].items() if k != "id"}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
