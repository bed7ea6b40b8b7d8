// `zos completion bash`: commands, flags, and service names asked from the node.
export const bashCompletion = `# bash completion for zos; install with: zos completion bash > /etc/bash_completion.d/zos
_zos() {
  local cur prev words cword
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local i cmd="" sub=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      --node|--key|--timeout) ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd="\${COMP_WORDS[i]}"; elif [[ -z $sub ]]; then sub="\${COMP_WORDS[i]}"; fi ;;
    esac
  done
  case "$prev" in
    --node) COMPREPLY=($(compgen -W "unix:/run/zos.sock" -- "$cur")); return ;;
    --key) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "--node --json --key --timeout --help" -- "$cur")); return
  fi
  case "$cmd" in
    "") COMPREPLY=($(compgen -W "keygen pubkey node service reboot poweroff completion help" -- "$cur")) ;;
    node) [[ -z $sub ]] && COMPREPLY=($(compgen -W "info" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
    service)
      if [[ -z $sub ]]; then
        COMPREPLY=($(compgen -W "list status start stop restart kill logs monitor forget" -- "$cur"))
      else
        local names
        names=$(zos service list --json 2>/dev/null | grep -o '"name":"[^"]*"' | cut -d'"' -f4)
        COMPREPLY=($(compgen -W "$names -f" -- "$cur"))
      fi ;;
  esac
}
complete -F _zos zos
`;
