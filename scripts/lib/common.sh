# shellcheck shell=bash
# Helpers shared by scripts/services, scripts/dev and scripts/test. Source it, don't run it.
#
# Sets REPO_ROOT (the workspace root) and SERVICES_DIR (data, logs, pid files, venv; default
# <repo>/.services, override with TASKTRAIL_SERVICES_DIR).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVICES_DIR="${TASKTRAIL_SERVICES_DIR:-$REPO_ROOT/.services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)" # absolute: servers run with another cwd
LOG_DIR="$SERVICES_DIR/logs"
mkdir -p "$LOG_DIR"

# The name of the calling script, for messages ("services", "dev", "test").
SCRIPT_NAME="$(basename "$0")"
# shellcheck disable=SC2034 # used by the scripts that source this file
SCRIPT_PATH="$(cd "$(dirname "$0")" && pwd)/$SCRIPT_NAME"

log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '[%s] error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, else through sudo (never prompting when
# there is no terminal, so CI fails fast instead of hanging).
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [[ -t 0 ]]; then sudo "$@"; else sudo -n "$@"; fi
    else
        die "this needs root and sudo is missing; run as root: $*"
    fi
}

# apt-get install with one `apt-get update` per script run, non-interactive.
_APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found (not a Debian-like system): install these yourself: $*"
    if ((_APT_UPDATED == 0)); then
        log "apt-get update"
        as_root apt-get update -q
        _APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# True when something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp; no netcat needed).
port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True when process $1 is alive and its command line contains $2 (guards against a stale pid
# file whose pid the kernel has given to an unrelated process).
pid_matches() {
    local pid=$1 pattern=$2 cmdline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ $cmdline == *"$pattern"* ]]
}

# Prints the pid stored in pid file $1 if that process is alive and matches $2; fails otherwise.
live_pid() {
    local file=$1 pattern=$2 pid
    [[ -s $file ]] || return 1
    pid="$(head -n1 "$file")"
    pid_matches "$pid" "$pattern" || return 1
    printf '%s\n' "$pid"
}

# True when process $1 exists and is not a zombie (kill -0 succeeds on zombies, and a server
# that dies right after we started it stays a zombie child of this script).
pid_alive() {
    local state
    state="$(pid_state "$1")" || return 1
    [[ -n $state && $state != Z ]]
}

# Prints the one-letter state of process $1 (R, S, T, Z, ...) from /proc/PID/stat; the field
# after the parenthesised command name, which itself may contain spaces.
pid_state() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    printf '%s\n' "${stat%% *}"
}

# True when process $1 is stopped (SIGSTOP), e.g. by `scripts/services pause-broker`.
pid_stopped() {
    [[ "$(pid_state "$1")" == T ]]
}

# Prints the last lines of log file $1 to stderr, indented.
log_tail() {
    local file=$1 lines=${2:-30}
    if [[ -s $file ]]; then
        printf '  --- last %s lines of %s ---\n' "$lines" "$file" >&2
        tail -n "$lines" "$file" | sed 's/^/  | /' >&2
    else
        printf '  (%s is empty or missing)\n' "$file" >&2
    fi
}

# wait_for_port NAME PORT TIMEOUT_SECONDS LOGFILE [PID]
# Waits until 127.0.0.1:PORT accepts connections. Fails with the log tail when the timeout
# passes or when PID (the process that should open the port) exits first.
wait_for_port() {
    local name=$1 port=$2 timeout=$3 logfile=$4 pid=${5:-}
    local deadline=$((SECONDS + timeout))
    until port_open "$port"; do
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            log_tail "$logfile"
            die "$name exited before it listened on 127.0.0.1:$port; see $logfile"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$logfile"
            die "$name did not accept connections on 127.0.0.1:$port within ${timeout}s; see $logfile"
        fi
        sleep 0.2
    done
}

# start_background PIDFILE LOGFILE COMMAND...
# Starts COMMAND detached (own session, no terminal, stdin from /dev/null, output appended to
# LOGFILE, cwd START_IN or else SERVICES_DIR) and writes its pid to PIDFILE. `setsid` only forks when it is a
# process-group leader, which a background job of a non-interactive shell never is, so $! is
# the server's own pid (start_background checks that).
start_background() {
    local pidfile=$1 logfile=$2
    shift 2
    # 9>&-: fd 9 is scripts/services' lock; a server that inherited it would hold it forever.
    (cd "${START_IN:-$SERVICES_DIR}" && exec setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&-) &
    local pid=$!
    printf '%s\n' "$pid" >"$pidfile"
}

# stop_pid NAME PIDFILE PATTERN TIMEOUT_SECONDS
# Stops the process recorded in PIDFILE (only if it still matches PATTERN): SIGTERM (plus
# SIGCONT, in case it is paused), waits up to TIMEOUT, then SIGKILL. Removes PIDFILE.
stop_pid() {
    local name=$1 pidfile=$2 pattern=$3 timeout=$4 pid
    if ! pid="$(live_pid "$pidfile" "$pattern")"; then
        [[ -e $pidfile ]] && log "$name: not running (removing stale $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # a SIGSTOPped process handles SIGTERM only once continued
    local deadline=$((SECONDS + timeout))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            warn "$name (pid $pid) still running after ${timeout}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
}

# Exports TASKTRAIL_AUTH__JWT_SECRET unless it is set already: the checkout's own signing key,
# made once (openssl rand -base64 48, or /dev/urandom) into $SERVICES_DIR/jwt-secret (mode 600,
# under .services/, which git ignores). The services refuse to start without a key.
ensure_jwt_secret() {
    [[ -n ${TASKTRAIL_AUTH__JWT_SECRET:-} ]] && return 0
    local file="$SERVICES_DIR/jwt-secret"
    if [[ ! -s $file ]]; then
        mkdir -p "$SERVICES_DIR"
        (
            umask 077
            if command -v openssl >/dev/null 2>&1; then
                openssl rand -base64 48 >"$file"
            else
                head -c 48 /dev/urandom | base64 -w0 >"$file"
            fi
        )
        log "made a signing key for this checkout: $file"
    fi
    TASKTRAIL_AUTH__JWT_SECRET="$(tr -d '\n' <"$file")"
    export TASKTRAIL_AUTH__JWT_SECRET
}
