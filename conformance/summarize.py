"""Summarise an Autobahn fuzzing-server report directory (reports/clients).

Usage: python conformance/summarize.py REPORT_DIR [--failures AGENT] [--markdown OUT]

Prints, per case category (1-10), how many cases each agent passed (OK),
passed non-strictly, got INFORMATIONAL, or failed; then, for AGENT, every case
that is not OK: the exact octets the fuzzing server wrote (its 'TO' wire-log
entries, server frames are unmasked) and what came back from the client.
"""
import argparse
import collections
import json
import os

CATEGORIES = {
    "1": "Framing (text/binary, 0..65536 bytes, chopped)",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes (reserved)",
    "5": "Fragmentation",
    "6": "UTF-8 handling",
    "7": "Close handling",
    "9": "Limits/performance (64 KiB..16 MiB, fragmented, chopped)",
    "10": "Auto-fragmentation",
}


def key(case):
    return [int(x) for x in case.split(".")]


def grade(v):
    b, c = v["behavior"], v["behaviorClose"]
    if b == "INFORMATIONAL":
        return "INFO"
    if b == "OK" and c == "OK":
        return "OK"
    if b == "NON-STRICT" and c == "OK":
        return "NON-STRICT"
    return "FAILED"


def client_frames(octets):
    """Frames parsed out of the client's octets (masked; the wire log keeps 64 octets per read)."""
    frames, pos = [], 0
    while len(octets) - pos >= 2:
        b0, b1 = octets[pos], octets[pos + 1]
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = int.from_bytes(octets[pos:pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(octets[pos:pos + 8], "big"), pos + 8
        key = octets[pos:pos + 4] if b1 & 0x80 else b"\0\0\0\0"
        pos += 4 if b1 & 0x80 else 0
        body = bytes(c ^ key[i % 4] for i, c in enumerate(octets[pos:pos + n]))
        name = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}.get(b0 & 0x0F, b0 & 0x0F)
        frames.append(f"{name}(fin={b0 >> 7}, len={n}, {body[:24].hex()}{'…' if len(body) > 24 or len(body) < n else ''})")
        pos += n
    return frames


def wire(report):
    """Server octets as written (unmasked) and the frames the client sent back."""
    sent, back = [], b""
    for entry in report.get("wirelog", [])[2:]:
        if entry[0] == "TO":
            sent.append(entry[1][1].replace(" ...", "…"))
        elif entry[0] == "RO":
            back += bytes.fromhex(entry[1][1].replace(" ...", ""))
    return sent, client_frames(back)


def load_index(report_dir):
    with open(os.path.join(report_dir, "index.json")) as f:
        return json.load(f)


def table(index):
    """The per-category Markdown table, one column per agent."""
    agents = list(index)
    lines = ["| category | " + " | ".join(agents) + " |", "|---|" + "---|" * len(agents)]
    totals = {a: collections.Counter() for a in agents}
    for cat, title in CATEGORIES.items():
        cells = []
        for a in agents:
            counts = collections.Counter(grade(v) for k, v in index[a].items() if k.split(".")[0] == cat)
            totals[a].update(counts)
            cells.append(", ".join(f"{n} {g}" for g, n in sorted(counts.items())) or "-")
        lines.append(f"| {cat}. {title} | " + " | ".join(cells) + " |")
    total_cells = (", ".join(f"{n} {g}" for g, n in sorted(totals[a].items())) for a in agents)
    lines.append("| total | " + " | ".join(total_cells) + " |")
    return "\n".join(lines)


def failed_cases(report_dir, agent):
    """The cases ``agent`` FAILED, in order."""
    index = load_index(report_dir).get(agent, {})
    return [case for case in sorted(index, key=key) if grade(index[case]) == "FAILED"]


def not_ok(report_dir, index, agent):
    """For each case ``agent`` did not pass outright: what the server wrote and the client answered."""
    out = [f"\nCases not OK for {agent}:\n"]
    for case in sorted(index[agent], key=key):
        v = index[agent][case]
        if grade(v) in ("OK", "INFO"):
            continue
        with open(os.path.join(report_dir, v["reportfile"])) as f:
            report = json.load(f)
        sent, back = wire(report)
        description = report["description"][:160].replace("<br>", " ")
        out.append(f"- {case} [{v['behavior']}/{v['behaviorClose']}] {description}")
        out.append(f"    server wrote: {' | '.join(sent)[:300]}")
        out.append(f"    client sent:  {' ; '.join(back)[:300] or '(nothing)'}")
        out.append(
            f"    verdict: {report['result']} / {report['resultClose']}; "
            f"close code from client: {v['remoteCloseCode']}"
        )
    return "\n".join(out)


def summary(report_dir, failures_of=None):
    index = load_index(report_dir)
    text = table(index)
    if failures_of in index:
        text += "\n" + not_ok(report_dir, index, failures_of)
    return text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report_dir")
    parser.add_argument("--failures", default=None, metavar="AGENT")
    parser.add_argument("--markdown", default=None, metavar="OUT")
    args = parser.parse_args()
    text = summary(args.report_dir, args.failures)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
