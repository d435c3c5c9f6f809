#!/usr/bin/env python3
"""Layering check for `.ci/run`. Import graph of src/: file -> files it uses (via crate::/super::/self:: paths), resolving
re-exports in lib.rs/mod.rs to the defining file. Prints 2-cycles and longer cycles, and
raw/ or sys/ files that reach up (they may use only raw/, sys/ and sync.rs); exits 1 if any.
A `pub use` in lib.rs or a mod.rs is a facade, not a dependency; `#[cfg(test)]` modules
are left out. Usage: layering.py [SRC_DIR]   (SHOW=prefix prints the edges below prefix)"""
import os, re, sys
src = sys.argv[1] if len(sys.argv) > 1 else 'src'
files = {}
for d, _, fs in os.walk(src):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, src)
            parts = rel[:-3].split('/')
            if parts[-1] in ('mod', 'lib', 'main'):
                parts = parts[:-1]
            if parts and parts[0] == 'bin':
                continue
            files[tuple(parts)] = p
def strip(s):
    s = re.sub(r'//[^\n]*', '', s)
    s = re.sub(r'/\*.*?\*/', '', s, flags=re.S)
    s = re.sub(r'"(\\.|[^"\\])*"', '""', s)
    return s
def drop_tests(s):
    # drop #[cfg(test)] mod tests { ... } blocks: test-only uses are not dependencies
    m = re.search(r'#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{', s)
    while m:
        depth=0; j=m.end()-1
        while j < len(s):
            if s[j]=='{': depth+=1
            elif s[j]=='}':
                depth-=1
                if depth==0: break
            j+=1
        s = s[:m.start()] + s[j+1:]
        m = re.search(r'#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{', s)
    return s
text = {k: drop_tests(strip(open(p).read())) for k, p in files.items()}
def expand(tree):
    # expand a use tree like a::{b, c::{d, e}} into list of paths
    tree = tree.strip()
    m = re.match(r'^(.*?)\{(.*)\}$', tree, re.S)
    if not m:
        return [tree]
    pre, inner = m.group(1), m.group(2)
    items=[]; depth=0; cur=''
    for ch in inner:
        if ch=='{': depth+=1
        if ch=='}': depth-=1
        if ch==',' and depth==0:
            items.append(cur); cur=''
        else: cur+=ch
    items.append(cur)
    out=[]
    for it in items:
        it=it.strip()
        if not it: continue
        for e in expand(it):
            out.append(pre+e)
    return out
def refs(mod, s):
    paths=[]
    for m in re.finditer(r'\buse\s+([^;]+);', s):
        is_pub = bool(re.search(r'pub(\([^)]*\))?\s+use\s*$', s[max(0,m.start()-20):m.start()+4]))
        for p in expand(m.group(1)):
            p = re.sub(r'\s+as\s+\w+$', '', p.strip())
            paths.append((p.replace(' ',''), is_pub))
    for m in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', s):
        paths.append((m.group(1), False))
    return paths
def absolute(mod, p):
    segs = p.split('::')
    if segs[0]=='crate': base=[]; segs=segs[1:]
    elif segs[0] in ('super','self'):
        base=list(mod)
        # a non-mod.rs file's `self` is its own module
        while segs and segs[0] in ('super','self'):
            if segs[0]=='super': base=base[:-1]
            segs=segs[1:]
    else:
        return None
    return base+segs
pubuse = {}
for k in files:
    s=text[k]
    for p, is_pub in refs(k, s):
        if is_pub:
            a=absolute(k,p)
            if a: pubuse.setdefault(k,{})[a[-1]]=a
def resolve(a, depth=0):
    # longest module prefix
    for n in range(len(a), -1, -1):
        if tuple(a[:n]) in files:
            mod=tuple(a[:n]); rest=a[n:]
            if rest and depth<8 and (len(mod)==0 or files[mod].endswith('mod.rs') or files[mod].endswith('lib.rs')):
                tgt = pubuse.get(mod,{}).get(rest[0])
                if tgt and tgt!=a:
                    return resolve(tgt+rest[1:], depth+1)
            return mod
    return None
edges={k:set() for k in files}
for k in files:
    for p, is_pub in refs(k, text[k]):
        if is_pub and (files[k].endswith('mod.rs') or files[k].endswith('lib.rs')):
            continue  # a facade's re-export is not a dependency
        a=absolute(k,p)
        if a is None: continue
        t=resolve(a)
        if t is not None and t!=k:
            edges[k].add(t)
name=lambda k: files[k][len(src)+1:]
bad=0
for a in sorted(files):
    for b in sorted(edges[a]):
        if a<b and a in edges[b]:
            print('2-cycle:', name(a), '<->', name(b)); bad+=1
# longer cycles via SCC (Tarjan)
idx={}; low={}; st=[]; on=set(); sccs=[]; c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0]; c[0]+=1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop(); on.discard(w); comp.append(w)
            if w==v: break
        if len(comp)>1: sccs.append(comp)
for v in files:
    if v not in idx: sc(v)
for comp in sccs:
    print('cycle group:', ', '.join(sorted(name(k) for k in comp))); bad+=1
for a in files:
    if a and a[0] in ('raw','sys'):
        for b in edges[a]:
            if not b or b[0] not in ('raw','sys','sync'):
                print('reaches up:', name(a), '->', name(b) if b else 'lib.rs'); bad+=1
print('layering problems:', bad)
if os.environ.get('SHOW'):
    for a in sorted(files):
        if name(a).startswith(os.environ['SHOW']):
            print(name(a), '->', sorted(name(b) for b in edges[a] if name(b).startswith(os.environ['SHOW'])))
sys.exit(1 if bad else 0)
