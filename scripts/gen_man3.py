#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Man pages (section 3) for rcache's API, generated from the header comments.

The headers are the one source: each RCACHE_API function's page is the comment above it, its
declaration(s), and the types, enums and macros declared since the previous function (the
struct a function fills, the callback it takes). Consecutive declarations under one comment
form a family: one page, named after the first, and a `.so` link page for every other name
(functions and function-like macros such as rcache_options_init). librcache.3 is the
overview: the top comment of each header and the list of pages.

    scripts/gen_man3.py OUT_DIR VERSION include/rcache/rcache.h include/rcache/json.h ...

Writes OUT_DIR/*.3; deterministic (no dates), so the same headers give the same pages.
"""
import os
import re
import sys

BANNER = re.compile(r"^/\*\s*(-{3,}|={3,})")


def items(text):
    """Splits a header into (kind, text) items: comment, decl, define, type, blank, other."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            out.append(("blank", ""))
            i += 1
        elif s.startswith("/*"):
            j = i
            while "*/" not in lines[j]:
                j += 1
            out.append(("comment", "\n".join(lines[i : j + 1])))
            i = j + 1
        elif s.startswith("RCACHE_API"):
            j = i
            while ";" not in lines[j]:
                j += 1
            out.append(("decl", "\n".join(lines[i : j + 1])))
            i = j + 1
        elif s.startswith("#define"):
            j = i
            while lines[j].rstrip().endswith("\\"):
                j += 1
            out.append(("define", "\n".join(lines[i : j + 1])))
            i = j + 1
        elif s.startswith(("typedef", "enum", "struct")):
            j, depth = i, 0
            while True:
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0 and ";" in lines[j]:
                    break
                j += 1
            out.append(("type", "\n".join(lines[i : j + 1])))
            i = j + 1
        else:
            out.append(("other", line))
            i += 1
    return out


def comment_text(c):
    """The words of a comment block, without its /* * */ frame."""
    c = re.sub(r"^\s*/\*+", "", c.strip())
    c = re.sub(r"\*+/\s*$", "", c)
    lines = [re.sub(r"^\s*\* ?", "", l) for l in c.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def decl_name(d):
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", d.replace("RCACHE_API", ""))
    return m.group(1) if m else None


def esc(t):
    """Roff-safe text: backslashes, non-ASCII characters, lines starting with . or '."""
    t = t.replace("\\", "\\e")
    t = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in t)
    return "\n".join(("\\&" + l if l.startswith((".", "'")) else l) for l in t.split("\n"))


def paragraphs(text):
    """Comment text as roff: blank lines and '- ' items start paragraphs."""
    out, para = [], []

    def flush():
        if para:
            out.append(esc(" ".join(p.strip() for p in para)))
            para.clear()

    for l in text.split("\n"):
        if not l.strip():
            flush()
            out.append(".PP")
        elif re.match(r"\s*-\s", l):
            flush()
            out.append(".IP \\(bu 2")
            para.append(re.sub(r"^\s*-\s", "", l))
        else:
            para.append(l)
    flush()
    return "\n".join(out)


def summary(text, name):
    first = " ".join(text.split())
    m = re.match(r"(.+?[.:;])(\s|$)", first)
    s = m.group(1).rstrip(".:;") if m else first
    if len(s) > 90:
        s = s[:87].rsplit(" ", 1)[0] + "..."
    return s or name


def families(path, orphans):
    """Dicts: names, decls (with their macros), comment, pending types, section."""
    its = items(open(path, encoding="utf-8").read())
    found = []
    pending, section, fam = [], "", None
    last_comment = None  # (text, index) of the comment just above the current item
    for k, (kind, txt) in enumerate(its):
        if kind == "comment" and BANNER.match(txt.strip()):
            body = comment_text(txt)
            body = "\n".join(body.split("\n")[1:]).strip()  # the banner line itself goes
            if body:
                section = re.sub(r"\n?=+\s*$", "", body).strip()
            elif "end of" in txt:
                section = ""
            orphans.extend(pending)  # constants no function follows: on librcache.3
            pending, fam, last_comment = [], None, None
            continue
        if kind == "decl":
            name = decl_name(txt)
            if fam is None:
                comment = last_comment[0] if last_comment and last_comment[1] == k - 1 else ""
                types = [p for p in pending if p[1] != comment]
                fam = {"names": [], "decls": [], "comment": comment, "types": types,
                       "section": section}
                pending = []
                found.append(fam)
            elif last_comment and last_comment[1] == k - 1:
                fam["decls"].append("/* " + comment_text(last_comment[0]) + " */")
            fam["names"].append(name)
            # continuation lines were aligned after "RCACHE_API ": keep them aligned
            fam["decls"].append(txt.replace("RCACHE_API ", "").replace("\n" + " " * 11, "\n"))
            continue
        if kind == "define" and fam is not None and re.match(r"#define\s+rcache_\w+\(", txt):
            fam["names"].append(re.match(r"#define\s+(rcache_\w+)\(", txt).group(1))
            fam["decls"].append(txt)
            continue
        if kind == "comment":
            last_comment = (txt, k)
            fam = None
            continue
        if kind == "define" and not re.match(r"#define\s+RCACHE_\w+\s+\S", txt):
            continue  # include guards, RCACHE_API: not part of the API
        if kind == "define" and re.match(r"#define\s+RCACHE_API\b", txt):
            continue
        if kind in ("type", "define"):
            c = last_comment[0] if last_comment and last_comment[1] == k - 1 else None
            if c:
                pending = [p for p in pending if p[1] != c]
            pending.append((txt, c))
            fam = None
            continue
        if kind == "blank":
            fam = None
    orphans.extend(pending)
    return found


def header_intro(path):
    for kind, txt in items(open(path, encoding="utf-8").read()):
        if kind == "comment" and "SPDX" not in txt:
            return comment_text(txt)
    return ""


def page(fam, header, version):
    name = fam["names"][0]
    text = comment_text(fam["comment"]) if fam["comment"] else ""
    out = [
        '.\\" Generated by scripts/gen_man3.py from %s: edit the header, not this file.' % header,
        '.TH %s 3 "" "rcache %s" "rcache manual"' % (name.upper(), version),
        ".SH NAME",
        esc(", ".join(fam["names"])) + " \\- " + esc(summary(text, name)),
        ".SH SYNOPSIS",
        ".nf",
        ".B #include <%s>" % header,
        "",
    ]
    for t, c in fam["types"]:
        if c:
            out.append(esc(c))
        out.append(esc(t))
        out.append("")
    out.extend(esc(d) for d in fam["decls"])
    out.append(".fi")
    out.append(".SH DESCRIPTION")
    out.append(paragraphs(text) if text else "See the synopsis.")
    if fam["section"]:
        out.append(".SH NOTES")
        out.append(paragraphs(fam["section"]))
    out.append(".SH SEE ALSO")
    out.append(".BR librcache (3)")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    outdir, version, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(outdir, exist_ok=True)
    pages, listing, intro, orphans = {}, [], [], []
    for h in headers:
        inc = "rcache/" + os.path.basename(h)
        intro.append((inc, header_intro(h)))
        for fam in families(h, orphans):
            first = fam["names"][0]
            pages[first + ".3"] = page(fam, inc, version)
            for other in fam["names"][1:]:
                pages[other + ".3"] = ".so man3/%s.3\n" % first
            listing.append((inc, fam["names"]))
    ov = [
        '.\\" Generated by scripts/gen_man3.py from include/rcache/*.h.',
        '.TH LIBRCACHE 3 "" "rcache %s" "rcache manual"' % version,
        ".SH NAME",
        "librcache \\- a Redis-backed application cache for C",
        ".SH SYNOPSIS",
        ".nf",
    ]
    ov += [".B #include <%s>" % inc for inc, _ in intro]
    ov += [".PP", "cc app.c $(pkg-config --cflags --libs rcache)", ".fi", ".SH DESCRIPTION"]
    for inc, text in intro:
        ov += [".SS <%s>" % inc, paragraphs(text)]
    ov.append(".SH FUNCTIONS")
    for inc, names in listing:
        ov += [".TP", ".BR %s (3)" % names[0], esc(", ".join(names) + " (<%s>)" % inc)]
    if orphans:
        ov += [".SH CONSTANTS", ".nf"]
        for t, c in orphans:
            ov += ([esc(c)] if c else []) + [esc(t), ""]
        ov.append(".fi")
    ov += [".SH SEE ALSO", ".BR rcache (1)"]
    pages["librcache.3"] = "\n".join(ov) + "\n"
    for stale in os.listdir(outdir):
        if stale.endswith(".3") and stale not in pages:
            os.remove(os.path.join(outdir, stale))
    for name, body in sorted(pages.items()):
        p = os.path.join(outdir, name)
        if not os.path.exists(p) or open(p, encoding="utf-8").read() != body:
            with open(p, "w", encoding="utf-8") as f:
                f.write(body)


if __name__ == "__main__":
    main()
