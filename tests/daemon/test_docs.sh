#!/usr/bin/env bash
# test_docs.sh MNEMOCTL BUILD -- the manual pages and the bash completion that mnemoctl (and
# mnemo, its own page) write from their command tables: each page renders with no groff
# warning, mnemoctl(1) and mnemo(1) name every command --help lists, mnemo.yaml(5) every key; the completion completes commands,
# subcommands and options; cmake --install puts programs, pages, completion, unit and
# example config where they belong, the unit's ExecStart naming the prefix's mnemod.
set -euo pipefail
ctl=$1
build=$2
tmp=$(mktemp -d /tmp/mnemo-test-docs-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v groff >/dev/null || fail "groff is missing (groff-base): run scripts/setup"

"$build/bin/mnemo" man >"$tmp/mnemo.roff"
for p in mnemoctl mnemod mnemo.yaml mnemo; do
  [ "$p" = mnemo ] || "$ctl" man "$p" >"$tmp/$p.roff"
  groff -man -Tutf8 -ww -z "$tmp/$p.roff" 2>"$tmp/warn" || fail "groff failed on $p"
  [ ! -s "$tmp/warn" ] || fail "groff warns on $p: $(cat "$tmp/warn")"
done
"$ctl" --help | sed -n '/^commands:/,/^$/p' | sed '1d;$d' | grep '^  [a-z]' | awk '{print $1}' | sort -u >"$tmp/names"
while read -r name; do
  grep -q "^\\\\fB$name" "$tmp/mnemoctl.roff" || fail "mnemoctl(1) lacks the command $name"
done <"$tmp/names"
"$ctl" config keys | sed -n 's/^| `\([a-z_.]*\)`.*/\1/p' >"$tmp/keys"
[ "$(wc -l <"$tmp/keys")" -gt 50 ] || fail "config keys listed too few keys"
while read -r key; do
  grep -q "^\\\\fB$key\\\\fR" "$tmp/mnemo.yaml.roff" || fail "mnemo.yaml(5) lacks the key $key"
done <"$tmp/keys"
"$ctl" man nope 2>/dev/null && fail "an unknown page was written"
"$build/bin/mnemo" --help | sed -n '/^commands:/,/^$/p' | sed '1d;$d' | grep '^  [a-z]' | awk '{print $1}' | sort -u >"$tmp/wnames"
[ "$(wc -l <"$tmp/wnames")" -gt 10 ] || fail "mnemo --help listed too few commands"
while read -r name; do
  grep -q "^\\\\fB$name" "$tmp/mnemo.roff" || fail "mnemo(1) lacks the command $name"
done <"$tmp/wnames"

# mnemo's help, every command's: filled to 79 columns, no tabs (mnemoctl's: test_mnemoctl)
{
  "$build/bin/mnemo" --help
  while read -r name; do
    "$build/bin/mnemo" help $name # a name with its subcommands shows them all
  done <"$tmp/wnames"
} >"$tmp/whelp" 2>&1
awk 'length($0) > 79 || /\t/ {print "mnemo help: " $0; bad = 1} END {exit bad}' "$tmp/whelp" ||
  fail "mnemo's help is wider than 79 columns or has tabs"
[ "$(grep -c '^usage: mnemo ' "$tmp/whelp")" -gt 15 ] || fail "mnemo help printed too few commands"

"$ctl" completion bash >"$tmp/comp.sh"
bash -c '
source "$1"
t() { COMP_WORDS=("${@:2}"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _mnemoctl; [ "${COMPREPLY[*]}" = "$1" ] || { echo "\"${*:2}\": \"${COMPREPLY[*]}\", want \"$1\""; exit 1; }; }
t triage mnemoctl tri
t accept mnemoctl triage acc
t "--script" mnemoctl lang add x --scr
t status mnemoctl --db x stat
t "--limit" mnemoctl jobs --li
t "--lang" mnemoctl report --la
t "--note" mnemoctl triage accept 5 --no
t "" mnemoctl jobs show 5 --li
t "zsh" mnemoctl completion z
t "mnemoctl mnemod mnemo.yaml" mnemoctl man mnemo
t "triage" mnemoctl help tri
' sh "$tmp/comp.sh" || fail "the completion"
command -v zsh >/dev/null || fail "zsh is missing: run scripts/setup"
# zsh: the completion function run with compsys's helpers replaced by ones that print
cat >"$tmp/t.zsh" <<'ZSH'
_describe() { local -a a; a=("${(@P)2}"); print -l -- ${a%%:*}; }
_files() { print -- '(files)'; }
t() {
  local want=$1 got
  shift
  words=("$@"); CURRENT=${#words}
  got=$($fn | while read -r l; do [[ $l == ${words[CURRENT]}* || $l == '(files)' ]] && print -r -- $l; done | tr '\n' ' ')
  [[ "${got% }" == "$want" ]] || { print "\"$*\": \"$got\", want \"$want\""; exit 1; }
}
fn=$2
eval "$(sed '$d' "$1")"
shift 2
"$@"
ZSH
"$ctl" completion zsh >"$tmp/comp.zsh"
zsh -f -c "source $tmp/t.zsh $tmp/comp.zsh _mnemoctl true
t triage mnemoctl tri
t accept mnemoctl triage acc
t --script mnemoctl lang add x --scr
t status mnemoctl --db x stat
t --limit mnemoctl jobs --li
t '(files)' mnemoctl report --lang sp
t --note mnemoctl approve 3 --no
t --note mnemoctl triage accept 5 --no
t '' mnemoctl jobs show 5 --li
t zsh mnemoctl completion z
t triage mnemoctl help tri" || fail "the zsh completion"
"$build/bin/mnemo" completion zsh >"$tmp/wcomp.zsh"
"$build/bin/mnemo" completion bash >"$tmp/wcomp.sh"
zsh -f -c "source $tmp/t.zsh $tmp/wcomp.zsh _mnemo true
t 'replay' mnemo rep
t 'absorb' mnemo replay abs
t --checkpoint mnemo eval --check
t '(files)' mnemo eval --checkpoint x" || fail "mnemo's zsh completion"
bash -c 'source "$1"; COMP_WORDS=(mnemo --json tri); COMP_CWORD=2; _mnemo; [ "${COMPREPLY[*]}" = "triage" ] || { echo "got ${COMPREPLY[*]}"; exit 1; }' sh "$tmp/wcomp.sh" ||
  fail "mnemo's bash completion"
"$ctl" completion fish 2>/dev/null && fail "a completion for an unknown shell"

DESTDIR=$tmp/root cmake --install "$build" --prefix /usr/local >/dev/null
for f in bin/mnemoctl bin/mnemod bin/mnemo share/man/man1/mnemoctl.1 share/man/man1/mnemo.1 share/man/man8/mnemod.8 \
  share/man/man5/mnemo.yaml.5 share/bash-completion/completions/mnemoctl \
  share/bash-completion/completions/mnemo share/zsh/vendor-completions/_mnemoctl \
  share/zsh/vendor-completions/_mnemo \
  lib/systemd/system/mnemod.service share/doc/mnemo/mnemo.example.yaml; do
  [ -s "$tmp/root/usr/local/$f" ] || fail "cmake --install did not install $f"
done
grep -qx 'ExecStart=/usr/local/bin/mnemod .*' "$tmp/root/usr/local/lib/systemd/system/mnemod.service" ||
  fail "the unit's ExecStart is not /usr/local/bin/mnemod: $(grep ExecStart "$tmp/root/usr/local/lib/systemd/system/mnemod.service")"
DESTDIR=$tmp/root2 cmake --install "$build" --prefix /opt/mnemo >/dev/null
grep -qx 'ExecStart=/opt/mnemo/bin/mnemod .*' "$tmp/root2/opt/mnemo/lib/systemd/system/mnemod.service" ||
  fail "the unit's ExecStart does not follow --prefix"
echo "docs: 1 passed, 0 failed"
