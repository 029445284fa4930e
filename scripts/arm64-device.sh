#!/usr/bin/env bash
# An emulated Raspberry Pi: an ARM64 Debian userland (debootstrap, run through qemu-user-static and binfmt_misc)
# with the edgekit agent installed the way the README installs it on a Pi: from an offline bundle made by
# `edgekit agent bundle --arch aarch64` (edgekit's wheel from this checkout and the aarch64 wheels of numpy, ONNX
# Runtime, LiteRT…, no torch) with the bundle's own install.sh. The agent runs in its own network namespace,
# joined to the host by a veth pair, so the host-to-device path crosses a real interface (and `--delay-ms` puts
# `tc netem` on it).
#
#   scripts/arm64-device.sh build                  build the root filesystem, or reuse the cached one
#   scripts/arm64-device.sh start [--delay-ms MS] [--port P] [--loopback]
#                                                  start the agent; prints its URL and token file (KEY=VALUE)
#   scripts/arm64-device.sh stop                   stop the agent, remove the namespace and the link
#   scripts/arm64-device.sh status                 print the running device's URL, token file, pid
#   scripts/arm64-device.sh run CMD [ARG...]       run a command in the ARM64 userland (its venv's bin first in PATH)
#   scripts/arm64-device.sh rootfs                 print the root filesystem's path
#
# Needs root (debootstrap, chroot, mounts, network namespaces) and Debian's debootstrap and qemu-user-static:
#   apt-get install debootstrap qemu-user-static
# Environment:
#   EDGEKIT_ARM64_ROOTFS   the cached root filesystem (default ~/.cache/edgekit/arm64-rootfs)
#   EDGEKIT_ARM64_STATE    pid, URL, token and logs of the running device (default ~/.cache/edgekit/arm64-device)
#   EDGEKIT_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian), EDGEKIT_DEBIAN_SUITE (bookworm)
#   EDGEKIT_BINFMT_CONF    qemu's binfmt_misc rule (default /usr/lib/binfmt.d/qemu-aarch64.conf)
#   EDGEKIT_BINFMT_DIR     where binfmt_misc is mounted (default /proc/sys/fs/binfmt_misc; tests point it elsewhere)
#   EDGEKIT_ARM64_CPU      the CPU qemu emulates (default cortex-a72, a Raspberry Pi 4's; cortex-a76 for a Pi 5)
#   PYTHON                 the host Python with edgekit that makes the bundle (default: .venv/bin/python, else python3)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/edgekit"
ROOTFS="${EDGEKIT_ARM64_ROOTFS:-$CACHE/arm64-rootfs}"
BASE="$ROOTFS.debootstrap"
STATE="${EDGEKIT_ARM64_STATE:-$CACHE/arm64-device}"
MIRROR="${EDGEKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${EDGEKIT_DEBIAN_SUITE:-bookworm}"
BINFMT_CONF="${EDGEKIT_BINFMT_CONF:-/usr/lib/binfmt.d/qemu-aarch64.conf}"
BINFMT_DIR="${EDGEKIT_BINFMT_DIR:-/proc/sys/fs/binfmt_misc}"
PYTHON="${PYTHON:-$([ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3)}"
VENV=/opt/edgekit/venv
PACKAGES=python3,python3-venv

say() { echo "arm64-device: $*" >&2; }
die() { say "error: $1"; [ -n "${2:-}" ] && say "hint: $2"; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "$1 needs root (debootstrap, chroot, mounts and network namespaces)" \
    "run it with sudo, or as root in a VM or a privileged container"
}

# --- binfmt_misc: the kernel must hand aarch64 executables to qemu-aarch64-static -----------------------------
binfmt_ready() { [ -f "$BINFMT_DIR/qemu-aarch64" ] && head -n1 "$BINFMT_DIR/qemu-aarch64" | grep -qx enabled; }

ensure_binfmt() {
  binfmt_ready && return 0
  if [ ! -f "$BINFMT_DIR/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" 2>/dev/null ||
      die "binfmt_misc is not mounted at $BINFMT_DIR and cannot be mounted here" \
        "this kernel or container cannot run foreign binaries; use a VM with CONFIG_BINFMT_MISC"
  fi
  binfmt_ready && return 0
  [ -f "$BINFMT_CONF" ] || die "binfmt: no qemu-aarch64 rule registered and no $BINFMT_CONF to register" \
    "apt-get install qemu-user-static (Debian ships the rule with it), then run this again"
  say "registering qemu-aarch64 with binfmt_misc from $BINFMT_CONF"
  grep -v '^#' "$BINFMT_CONF" > "$BINFMT_DIR/register" 2>/dev/null ||
    die "binfmt: the kernel refused the qemu-aarch64 rule from $BINFMT_CONF" \
      "check dmesg; on a systemd host run: systemctl restart systemd-binfmt"
  binfmt_ready || die "binfmt: qemu-aarch64 is registered but disabled" "echo 1 > $BINFMT_DIR/qemu-aarch64"
}

# --- the root filesystem, built once and cached ---------------------------------------------------------------
base_key() { echo "suite=$SUITE packages=$PACKAGES mirror=$MIRROR"; }

rootfs_key() {  # what the cached root filesystem was built from; another key means a rebuild
  { base_key
    sed -n '/^\[project\]/,/^\[project.scripts\]/p' "$REPO/pyproject.toml" | grep -E '^(dependencies|agent) ?=|^    "'
  } | sha256sum | cut -c1-16
}

# The CPU qemu emulates: a Raspberry Pi 4's Cortex-A72 by default (EDGEKIT_ARM64_CPU=cortex-a76 for a Pi 5;
# `qemu-aarch64-static -cpu help` lists the others). Not qemu's default `max`: with it, LiteRT 2.3 picks SME int8
# kernels, and under qemu 7.2 their outputs are wrong (digits INT8: cosine 0.03 against x86); with SME off, or any
# Pi's CPU, they are bit-exact. A Pi has no SME, so its CPU model is also the faithful choice.
CPU="${EDGEKIT_ARM64_CPU:-cortex-a72}"

# qemu-user (7.2) passes the host's x86 /proc/cpuinfo through, and the cpuinfo library inside ONNX Runtime and
# XNNPACK finds no ARM processor in it and crashes (SIGSEGV at `import onnxruntime`). The userland gets an ARM
# /proc/cpuinfo instead: one entry per host CPU with the emulated CPU's ids, which the runtimes use to tune
# kernels; the instruction set is qemu's (its HWCAPs), and the kernel and the mapped emulator still tell the agent
# that it runs emulated.
arm_cpuinfo() {  # CPU MODEL: printf format of one /proc/cpuinfo entry (%d = processor number)
  local part=0xd08 features="fp asimd evtstrm crc32 cpuid"  # Cortex-A72 (Pi 4), also for models not listed
  case "$1" in
    cortex-a53) part=0xd03 ;;
    cortex-a76|neoverse-n1)
      part=$([ "$1" = cortex-a76 ] && echo 0xd0b || echo 0xd0c)
      features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  esac
  printf 'processor\\t: %%d\\nBogoMIPS\\t: 108.00\\nFeatures\\t: %s\\nCPU implementer\\t: 0x41\\nCPU architecture: 8\\n' \
    "$features"
  printf 'CPU variant\\t: 0x0\\nCPU part\\t: %s\\nCPU revision\\t: 1\\n\\n' "$part"
}

in_userland() {  # ROOT CMD...: run CMD chrooted in ROOT, with /proc, /sys, /dev/shm, /tmp, /run in a private namespace
  local root="$1"; shift
  unshare --mount --pid --fork --kill-child -- bash -c '
    set -e; root="$1"; cpuinfo="$2"; cpu="$3"; shift 3
    mount --make-rprivate /
    mount -t proc proc "$root/proc"          # before any venv work: python -m venv fails silently without /proc
    mount --rbind /sys "$root/sys"           # XNNPACK reads the CPU topology from /sys/devices/system/cpu
    mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    for n in $(seq 0 $(($(nproc --all) - 1))); do printf "$cpuinfo" "$n"; done > "$root/run/cpuinfo"
    printf "Model\\t\\t: emulated arm64 (qemu-user -cpu %s)\\n" "$cpu" >> "$root/run/cpuinfo"
    mount --bind "$root/run/cpuinfo" "$root/proc/cpuinfo"
    ulimit -c 0                              # qemu-user can hang writing the core of a crashed threaded process
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 QEMU_CPU="$cpu" \
      PATH='"$VENV"'/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' _ "$root" \
    "$(arm_cpuinfo "$CPU")" "$CPU" "$@"
}

project_wheel() {  # DIR: build edgekit's wheel from this checkout into DIR; prints its path
  "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$1" "$REPO" >&2 ||
    die "could not build edgekit's wheel from $REPO" "pip needs hatchling (from PyPI) to build it"
  ls "$1"/edgekit-*.whl
}

make_bundle() {  # DIR PYVER: the README's offline bundle (`edgekit agent bundle --arch aarch64`) for that Python
  say "edgekit agent bundle --arch aarch64 --python $2 (edgekit's wheel and the aarch64 wheels it needs, with hashes)"
  "$PYTHON" -m edgekit.cli agent bundle --arch aarch64 --python "$2" --out "$1" >&2 ||
    die "edgekit agent bundle failed (above)" "PyPI must be reachable, and every dependency must have a manylinux \
aarch64 wheel for Python $2"
}

ensure_tools() {  # Debian's debootstrap and qemu-user-static (which ships the binfmt rule), installed if missing
  command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] && return 0
  command -v apt-get >/dev/null || die "debootstrap and qemu-user-static are missing and there is no apt-get" \
    "install Debian's debootstrap and qemu-user-static (or your distribution's equivalents)"
  say "installing Debian's debootstrap and qemu-user-static"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      debootstrap qemu-user-static; } >&2 || die "apt-get could not install debootstrap and qemu-user-static (above)"
}

debootstrap_base() {  # the bare userland (debootstrap's slow part, under qemu), cached on its own in $BASE
  if [ -f "$BASE/.edgekit-base" ] && [ "$(cat "$BASE/.edgekit-base")" = "$(base_key)" ]; then
    say "reusing the cached debootstrap of $SUITE arm64 in $BASE"
    return 0
  fi
  local tmp="$BASE.partial"
  rm -rf "$tmp"; mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  say "debootstrap $SUITE arm64 (minbase + $PACKAGES) from $MIRROR into $tmp: 5-20 minutes under qemu"
  if ! debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR" \
      > "$tmp.log" 2>&1; then
    tail -n 15 "$tmp.log" >&2
    [ -f "$tmp/debootstrap/debootstrap.log" ] && tail -n 15 "$tmp/debootstrap/debootstrap.log" >&2
    rm -f "$tmp.log"
    die "debootstrap failed (log above)" \
      "check that $MIRROR is reachable (EDGEKIT_DEBIAN_MIRROR sets another mirror) and that the disk has 1 GB free"
  fi
  rm -f "$tmp.log"
  base_key > "$tmp/.edgekit-base"
  trap - EXIT
  rm -rf "$BASE"; mv "$tmp" "$BASE"
}

build() {
  need_root build
  ensure_tools
  ensure_binfmt
  local key; key=$(rootfs_key)
  if [ -f "$ROOTFS/.edgekit-rootfs" ] && [ "$(cat "$ROOTFS/.edgekit-rootfs")" = "$key" ]; then
    say "reusing the cached root filesystem $ROOTFS"
    return 0
  fi
  local started=$SECONDS tmp="$ROOTFS.partial" digest
  digest=$(checkout_digest)
  debootstrap_base
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  cp -a --reflink=auto "$BASE" "$tmp"
  local pyver; pyver=$(in_userland "$tmp" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  make_bundle "$tmp/opt/edgekit/wheels" "$pyver"
  say "installing the agent inside the userland with the bundle's install.sh (offline, every wheel hash-checked)"
  in_userland "$tmp" /opt/edgekit/wheels/install.sh "$VENV" >&2
  local module
  for module in numpy onnxruntime ai_edge_litert.interpreter edgekit.agent.server; do
    in_userland "$tmp" python -c "import $module" ||
      die "$module does not import inside the ARM64 userland (above)" \
        "a crash here is the emulator's or the wheel's: try a newer qemu-user-static, or pin another version"
  done
  echo "$digest" > "$tmp/opt/edgekit/installed"
  echo "$key" > "$tmp/.edgekit-rootfs"
  trap - EXIT
  rm -rf "$ROOTFS"; mv "$tmp" "$ROOTFS"
  say "built $ROOTFS in $((SECONDS - started)) s ($(du -sh "$ROOTFS" | cut -f1))"
}

checkout_digest() {  # what the agent's wheel is built from
  (cd "$REPO" && find edgekit targets pyproject.toml -type f ! -name '*.pyc' -print0 | sort -z |
   xargs -0 sha256sum | sha256sum | cut -c1-16)
}

refresh_agent() {  # reinstall edgekit (only it) when this checkout differs from the one installed
  local digest scratch wheel
  digest=$(checkout_digest)
  if [ "$(cat "$ROOTFS/opt/edgekit/installed" 2>/dev/null)" != "$digest" ]; then
    scratch=$(mktemp -d); wheel=$(project_wheel "$scratch")
    say "installing this checkout's edgekit into the userland"
    cp "$wheel" "$ROOTFS/opt/edgekit/wheels/"
    in_userland "$ROOTFS" pip install --quiet --no-deps --no-index --force-reinstall \
      "/opt/edgekit/wheels/$(basename "$wheel")" >&2
    echo "$digest" > "$ROOTFS/opt/edgekit/installed"
    rm -rf "$scratch"
  fi
}

# --- the device: network namespace + veth, the agent, netem ---------------------------------------------------
# Each device gets link number N (the first free one): netns edgekit-arm64-N, veth ekN-host (10.213.N.1/30) <->
# ekN-dev (10.213.N.2/30), so several devices (one per state folder) can run side by side.
link_names() {  # N: set NETNS, HOST_IF, DEV_IF, HOST_IP, DEV_IP
  NETNS="edgekit-arm64-$1"; HOST_IF="ek$1-host"; DEV_IF="ek$1-dev"; HOST_IP="10.213.$1.1"; DEV_IP="10.213.$1.2"
}

free_link() {  # the first link number whose namespace and host interface are both unused
  local n
  for n in $(seq 0 63); do
    [ -e "/run/netns/edgekit-arm64-$n" ] || ip link show "ek$n-host" >/dev/null 2>&1 || { echo "$n"; return; }
  done
  echo 0
}

make_link() {  # returns non-zero (with the reason on stderr) when namespaces or veth are not permitted
  ip netns add "$NETNS" &&
  ip link add "$HOST_IF" type veth peer name "$DEV_IF" netns "$NETNS" &&
  ip addr add "$HOST_IP/30" dev "$HOST_IF" && ip link set "$HOST_IF" up &&
  ip -n "$NETNS" addr add "$DEV_IP/30" dev "$DEV_IF" && ip -n "$NETNS" link set "$DEV_IF" up &&
  ip -n "$NETNS" link set lo up
}

remove_link() {
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
}

add_delay() {  # MS of round-trip time: half on each direction of the veth link
  local half; half=$(awk "BEGIN { print $1 / 2 }")
  if ! err=$(tc qdisc add dev "$HOST_IF" root netem delay "${half}ms" 2>&1) ||
     ! err=$(tc -n "$NETNS" qdisc add dev "$DEV_IF" root netem delay "${half}ms" 2>&1); then
    stop_device quiet
    die "tc netem failed: $err" "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM, module sch_netem): \
modprobe sch_netem, or start without --delay-ms"
  fi
}

start() {
  local delay="" port=8765 loopback=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --delay-ms) delay="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      --loopback) loopback=1; shift ;;
      *) die "start: unknown option $1" "options: --delay-ms MS, --port P, --loopback" ;;
    esac
  done
  need_root start
  [ -f "$ROOTFS/.edgekit-rootfs" ] || build
  ensure_binfmt
  [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null &&
    die "an emulated device is already running (pid $(cat "$STATE/pid"))" "scripts/arm64-device.sh stop"
  refresh_agent
  mkdir -p "$STATE"; rm -f "$STATE"/{pid,url,network,link}
  local link; link=$(free_link); link_names "$link"; echo "$link" > "$STATE/link"
  local host=$DEV_IP netexec=(ip netns exec "$NETNS") network="veth $HOST_IF ($HOST_IP) <-> $DEV_IF ($DEV_IP) in netns $NETNS"
  if [ -n "$loopback" ] || ! err=$(make_link 2>&1); then
    [ -z "$loopback" ] && say "network namespaces or veth are not permitted here (${err:-?}): falling back to \
loopback; the host-to-device path does not cross a real interface"
    remove_link
    [ -n "$delay" ] && die "--delay-ms needs the veth link, and there is none on loopback" "start without --delay-ms"
    host=127.0.0.1; netexec=(); network="loopback (no network namespace)"
  fi
  [ -n "$delay" ] && { add_delay "$delay"; network="$network, netem ${delay} ms RTT"; }
  local token="/etc/edgekit/agent-token-$link"
  mkdir -p "$ROOTFS/etc/edgekit"
  rm -f "$ROOTFS$token"  # a fresh token for every start
  # setsid: its own session, so `stop` ends exactly this process tree
  setsid "${netexec[@]}" "$0" _userland "$ROOTFS" edgekit agent serve --host "$host" --port "$port" --insecure-http \
    --store /var/lib/edgekit/store --token-file "$token" > "$STATE/agent.log" 2>&1 < /dev/null &
  echo $! > "$STATE/pid"
  local url="http://$host:$port" deadline=$((SECONDS + 300))
  until curl_health "$url"; do
    if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$STATE/agent.log" >&2
      stop_device quiet
      die "the agent did not become healthy within 300 s (log above: $STATE/agent.log)"
    fi
    sleep 1
  done
  install -m 600 "$ROOTFS$token" "$STATE/token"
  echo "$url" > "$STATE/url"; echo "$network" > "$STATE/network"
  say "agent on $url ($network); token in $STATE/token"
  status
}

curl_health() {  # URL: the agent answers /v1/health (with the host's Python; no curl needed)
  "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/v1/health', timeout=2)" \
    "$1" 2>/dev/null
}

stop_device() {
  local pid
  pid=$(cat "$STATE/pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  if [ -f "$STATE/link" ]; then link_names "$(cat "$STATE/link")"; remove_link; fi
  rm -f "$STATE"/{pid,url,network,token,link}
  [ "${1:-}" = quiet ] || say "stopped"
}

status() {
  if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    echo "URL=$(cat "$STATE/url" 2>/dev/null)"
    echo "TOKEN_FILE=$STATE/token"
    echo "PID=$(cat "$STATE/pid")"
    echo "NETWORK=$(cat "$STATE/network" 2>/dev/null)"
  else
    say "no emulated device is running"; return 1
  fi
}

case "${1:-}" in
  build) build ;;
  start) shift; start "$@" ;;
  stop) need_root stop; stop_device ;;
  status) status ;;
  rootfs) echo "$ROOTFS" ;;
  run) shift; need_root run; [ -f "$ROOTFS/.edgekit-rootfs" ] || build; ensure_binfmt; in_userland "$ROOTFS" "$@" ;;
  _userland) shift; root="$1"; shift; in_userland "$root" "$@" ;;  # internal: used by start
  *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
