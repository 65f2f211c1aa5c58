# Sourced by the bench scripts: `need CMD[:PACKAGE] ...` installs, in one apt-get run, the
# Debian package of every command that is missing (the package is the command's own name
# unless given). A path instead of a command checks that the file exists.
need() {
  local pkgs=() item cmd pkg
  for item in "$@"; do
    cmd=${item%%:*}; pkg=${item#*:}
    if [[ $cmd == /* ]]; then [ -e "$cmd" ] && continue; else command -v "$cmd" >/dev/null && continue; fi
    pkgs+=("$pkg")
  done
  if [ ${#pkgs[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
  fi
}
