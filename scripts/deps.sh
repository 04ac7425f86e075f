# shellcheck shell=bash
# Shared shell functions of scripts/test, scripts/demo and scripts/bench.
# Source this file (it does not change shell options nor the working directory).
#
#   cfs_install_deps [EXTRA_PKG...]   apt-get install whatever is missing
#   cfs_install_build_deps            the same without CFS_TEST_PACKAGES (scripts/install)
#   cfs_install_s3rver                s3rver (npm) into tests/node/node_modules, as the lock file pins it
#   cfs_build DIR [MESON_ARG...]      meson setup (once) + ninja -C DIR
#   cfs_dataset OUT [LITGEN_ARG...]   deterministic LitData dataset, reused when it matches
#   cfs_nginx_start ROOT TMP [MODE]   nginx on a free 127.0.0.1 port (CFS_NGINX_PID/PORT)
#   cfs_stop_pid PID [SECONDS]        SIGTERM, wait, SIGKILL as last resort
#   cfs_unmount MNT                   fusermount3 -u, then -uz as last resort
#   cfs_pids_with_arg ARG [NAME]      PIDs whose argv holds ARG (and whose argv[0] ends in NAME)

CFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CFS_PYTHON=/usr/bin/python3

CFS_PACKAGES=(meson ninja-build pkg-config gcc libfuse3-dev fuse3 libcurl4-openssl-dev
	libglib2.0-dev libjson-glib-dev libzstd-dev libxxhash-dev libsystemd-dev libmicrohttpd-dev
	libmemcached-dev memcached python3-pymemcache nginx-light
	python3-pytest python3-pytest-xdist python3-numpy python3-pil python3-xxhash
	python3-prometheus-client python3-torch zstd curl ca-certificates openssl
	clang libclang-rt-14-dev clang-format-14 scdoc man-db)
# Those of CFS_PACKAGES that only the tests, the fuzzers and the format check need.
CFS_TEST_PACKAGES=(memcached python3-pymemcache nginx-light python3-pytest python3-pytest-xdist python3-numpy
	python3-pil python3-xxhash python3-prometheus-client python3-torch zstd curl openssl clang
	libclang-rt-14-dev clang-format-14)
# shellcheck disable=SC2034 # used by the scripts that source this file
CFS_BENCH_PACKAGES=(rclone httpdirfs)

# shellcheck disable=SC2034,SC2054 # used by scripts/test; the commas are meson's
CFS_ASAN_ARGS=(-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fno-sanitize-recover=all)

cfs_say() { printf '%s\n' "$*"; }
cfs_step() { printf '\n=== %s\n' "$*"; }
cfs_warn() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
cfs_die() {
	cfs_warn "error: $*"
	exit 1
}

# Root, or sudo when there is one; prints nothing.
cfs_as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		cfs_die "need root (or sudo) to run: $*"
	fi
}

cfs_pkg_installed() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ $status == ii* ]]
}

# Install the project's Debian packages plus EXTRA_PKG, only the missing ones.
cfs_install_deps() {
	cfs_install_packages "${CFS_PACKAGES[@]}" "$@"
}

# What building, installing and reading chunkfs(1) need: CFS_PACKAGES except CFS_TEST_PACKAGES.
cfs_install_build_deps() {
	local pkg build=()
	for pkg in "${CFS_PACKAGES[@]}"; do
		[[ " ${CFS_TEST_PACKAGES[*]} " == *" $pkg "* ]] || build+=("$pkg")
	done
	cfs_install_packages "${build[@]}"
}

# cfs_install_packages PKG...: apt-get install those of PKG that are not installed.
cfs_install_packages() {
	local pkg missing=()
	for pkg in "$@"; do
		cfs_pkg_installed "$pkg" || missing+=("$pkg")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	cfs_say "installing missing packages: ${missing[*]}"
	cfs_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
	cfs_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" </dev/null
	for pkg in "${missing[@]}"; do
		cfs_pkg_installed "$pkg" || cfs_die "package $pkg is still not installed"
	done
}

# cfs_install_s3rver: the local S3 of tests/test_s3.py (s3rver, see tests/node/package.json)
# into tests/node/node_modules with `npm ci`, exactly as tests/node/package-lock.json pins it,
# without install scripts. Skipped when node_modules was installed from the same lock file
# (its sha256 is kept in node_modules/.cfs-lock-sha256). Installs Debian's nodejs and npm only
# when there is no node or npm at all (a node from elsewhere, with its own npm, is kept).
cfs_install_s3rver() {
	local dir=$CFS_ROOT/tests/node want
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		cfs_install_deps nodejs npm
	fi
	[[ -f $dir/package-lock.json ]] || cfs_die "missing $dir/package-lock.json"
	want=$(sha256sum <"$dir/package-lock.json" | cut -d' ' -f1)
	if [[ -f $dir/node_modules/s3rver/package.json &&
		$(cat "$dir/node_modules/.cfs-lock-sha256" 2>/dev/null) == "$want" ]]; then
		cfs_say "s3rver already installed in tests/node/node_modules"
		return 0
	fi
	cfs_say "installing s3rver into tests/node/node_modules (npm ci)"
	(cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error </dev/null) ||
		cfs_die "npm ci in $dir failed"
	[[ -f $dir/node_modules/s3rver/package.json ]] || cfs_die "npm ci did not install s3rver"
	printf '%s\n' "$want" >"$dir/node_modules/.cfs-lock-sha256"
}

# cfs_build DIR [MESON_ARG...]: DIR is relative to the repository root.
cfs_build() {
	local dir=$1
	shift
	[[ $dir == /* ]] || dir=$CFS_ROOT/$dir
	if [[ ! -f $dir/build.ninja ]]; then
		if [[ -e $dir/meson-private ]]; then
			# A setup that failed half-way leaves this behind; start that dir over.
			rm -rf --one-file-system "$dir"
		fi
		meson setup "$dir" "$CFS_ROOT" "$@" </dev/null || cfs_die "meson setup $dir failed"
	fi
	ninja -C "$dir" </dev/null || cfs_die "build in $dir failed"
}

# cfs_dataset OUT [LITGEN_ARG...]: writes OUT with tests/litgen.py unless OUT already
# holds the dataset those arguments give (recorded in OUT/.litgen-stamp together with the
# generator's and index.json's sha256, and every chunk present with its index size).
cfs_dataset() {
	local out=$1
	shift
	local litgen=$CFS_ROOT/tests/litgen.py
	[[ -f $litgen ]] || cfs_die "missing $litgen"
	local want
	want="args: $*
litgen: $(sha256sum <"$litgen" | cut -d' ' -f1)"
	if [[ -f $out/.litgen-stamp && -f $out/index.json ]] &&
		[[ $(head -n 2 "$out/.litgen-stamp") == "$want" ]] &&
		[[ $(sed -n 3p "$out/.litgen-stamp") == "index: $(sha256sum <"$out/index.json" | cut -d' ' -f1)" ]] &&
		"$CFS_PYTHON" - "$out" <<'EOF'
import json, os, sys
d = sys.argv[1]
chunks = json.load(open(os.path.join(d, "index.json")))["chunks"]
paths = [(os.path.join(d, c["filename"]), c["chunk_bytes"]) for c in chunks]
sys.exit(0 if all(os.path.isfile(p) and os.path.getsize(p) == n for p, n in paths) else 1)
EOF
	then
		cfs_say "reusing dataset in $out"
		return 0
	fi
	cfs_say "generating dataset in $out (litgen.py $*)"
	local tmp=$out.tmp.$$
	rm -rf --one-file-system "$tmp"
	mkdir -p "$(dirname "$out")"
	"$CFS_PYTHON" "$litgen" "$tmp" "$@" || {
		rm -rf --one-file-system "$tmp"
		cfs_die "litgen.py failed"
	}
	printf '%s\nindex: %s\n' "$want" "$(sha256sum <"$tmp/index.json" | cut -d' ' -f1)" >"$tmp/.litgen-stamp"
	rm -rf --one-file-system "$out"
	mv "$tmp" "$out"
}

cfs_pid_alive() {
	local pid=$1 stat
	[[ -n $pid ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# cfs_wait_pid_exit PID SECONDS: true when PID is gone before the deadline.
cfs_wait_pid_exit() {
	local pid=$1 deadline=$((SECONDS + $2))
	while cfs_pid_alive "$pid"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# cfs_stop_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 10), then SIGKILL.
cfs_stop_pid() {
	local pid=$1 grace=${2:-10}
	cfs_pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	cfs_wait_pid_exit "$pid" "$grace" && return 0
	cfs_warn "PID $pid did not stop within ${grace}s of SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	cfs_wait_pid_exit "$pid" 10 || cfs_warn "PID $pid survived SIGKILL"
}

cfs_is_mounted() {
	local mnt=$1 _a _b _c _d point _rest
	while read -r _a _b _c _d point _rest; do
		[[ $point == "$mnt" ]] && return 0
	done </proc/self/mountinfo
	return 1
}

# cfs_unmount MNT: no-op when MNT is not mounted; lazy unmount as last resort.
cfs_unmount() {
	local mnt=$1
	cfs_is_mounted "$mnt" || return 0
	fusermount3 -u "$mnt" 2>/dev/null && return 0
	local deadline=$((SECONDS + 5))
	while cfs_is_mounted "$mnt" && ((SECONDS < deadline)); do
		fusermount3 -u "$mnt" 2>/dev/null && return 0
		sleep 0.2
	done
	cfs_is_mounted "$mnt" || return 0
	cfs_warn "$mnt is busy; lazy unmount"
	fusermount3 -uz "$mnt" || umount -l "$mnt" || cfs_warn "could not unmount $mnt"
}

# cfs_pids_with_arg ARG [NAME]: PIDs (one per line) of processes whose argv has an element
# equal to ARG and, if NAME is given, whose argv[0] basename is NAME.
cfs_pids_with_arg() {
	local want=$1 name=${2:-} f pid arg first found
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
		first="" found=0
		while IFS= read -r -d '' arg; do
			[[ -n $first ]] || first=${arg:-/}
			[[ $arg == "$want" ]] && found=1
		done 2>/dev/null <"$f" || true
		((found)) || continue
		[[ -z $name || ${first##*/} == "$name" ]] || continue
		printf '%s\n' "$pid"
	done
}

cfs_free_port() {
	"$CFS_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cfs_nginx_start ROOT TMP [MODE]: serve ROOT (autoindex on, sendfile on) on a free port of
# 127.0.0.1 with config, logs and temp files in TMP. MODE "single" (default): one process
# (master_process off); "workers": a master as root with 2 worker processes.
# Sets CFS_NGINX_PID (the process to stop) and CFS_NGINX_PORT; returns once the port accepts
# connections.
cfs_nginx_start() {
	local root=$1 tmp=$2 mode=${3:-single} attempt port main
	case $mode in
	single) main="master_process off;" ;;
	workers) main="user root; worker_processes 2;" ;;
	*) cfs_die "cfs_nginx_start: bad mode $mode" ;;
	esac
	# shellcheck disable=SC2034 # CFS_NGINX_PORT is for the caller
	CFS_NGINX_PID="" CFS_NGINX_PORT=""
	for attempt in 1 2 3 4 5; do
		port=$(cfs_free_port)
		cat >"$tmp/nginx.conf" <<EOF
$main
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    types { application/json json; }
    access_log $tmp/nginx-access.log;
    client_body_temp_path $tmp/nginx-body;
    proxy_temp_path $tmp/nginx-proxy;
    fastcgi_temp_path $tmp/nginx-fastcgi;
    uwsgi_temp_path $tmp/nginx-uwsgi;
    scgi_temp_path $tmp/nginx-scgi;
    sendfile on;
    # tcp_nopush (TCP_CORK) stalls ~40 ms on many small Range responses over keep-alive
    # connections (measured: 13 ms/request mean instead of 0.2 ms); keep it off.
    tcp_nopush off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $root;
        autoindex on;
    }
}
EOF
		nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" -g 'daemon off;' \
			</dev/null >>"$tmp/nginx-stdout.log" 2>&1 &
		CFS_NGINX_PID=$!
		local deadline=$((SECONDS + 20))
		while cfs_pid_alive "$CFS_NGINX_PID" && ((SECONDS < deadline)); do
			if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; then
				# shellcheck disable=SC2034 # for the caller
				CFS_NGINX_PORT=$port
				return 0
			fi
			sleep 0.1
		done
		if cfs_pid_alive "$CFS_NGINX_PID"; then
			cfs_stop_pid "$CFS_NGINX_PID"
			cfs_die "nginx did not accept connections on 127.0.0.1:$port within 20s (see $tmp/nginx-error.log)"
		fi
		wait "$CFS_NGINX_PID" 2>/dev/null || true
		CFS_NGINX_PID=""
		cfs_warn "nginx failed to start on port $port (attempt $attempt):"
		tail -n 3 "$tmp/nginx-error.log" >&2 2>/dev/null || true
	done
	cfs_die "nginx would not start; see $tmp/nginx-error.log"
}

cfs_nginx_stop() {
	if [[ -n ${CFS_NGINX_PID:-} ]]; then
		cfs_stop_pid "$CFS_NGINX_PID" 10
		wait "$CFS_NGINX_PID" 2>/dev/null || true
		CFS_NGINX_PID=""
	fi
}
