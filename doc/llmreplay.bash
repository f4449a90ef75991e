# bash completion for llmreplay (installed as share/bash-completion/completions/llmreplay)
_llmreplay()
{
    local cur prev cmd i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=${COMP_WORDS[1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "run trace ls check explain index prune ca config --help --version" -- "$cur"))
        return
    fi
    # after "--" the command being run is completed as a command line of its own
    for ((i = 2; i < COMP_CWORD; i++)); do
        if [ "${COMP_WORDS[i]}" = "--" ]; then
            COMPREPLY=($(compgen -c -- "$cur"))
            [ $((COMP_CWORD - i)) -gt 1 ] && COMPREPLY=($(compgen -f -- "$cur"))
            return
        fi
    done
    case "$prev" in
    -d | --dir | --record-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --mode) COMPREPLY=($(compgen -W "replay record record-if-missing live trace none once new_episodes all" -- "$cur")); return ;;
    --report | -o) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --pace | --max-live | --only | --allow-models | --ignore | --endpoint) return ;;
    esac
    case "$cmd" in
    run | trace)
        COMPREPLY=($(compgen -W "-d --dir --strict --ignore --pace --mode --record-dir --report --only --max-live --allow-models -o --help --" -- "$cur")) ;;
    ls | check | index) COMPREPLY=($(compgen -W "-d --dir --help" -- "$cur") $(compgen -d -- "$cur")) ;;
    explain) COMPREPLY=($(compgen -W "-d --dir --endpoint --help" -- "$cur") $(compgen -f -- "$cur")) ;;
    prune) COMPREPLY=($(compgen -W "--dry-run --help" -- "$cur") $(compgen -f -X '!*.json' -- "$cur")) ;;
    ca) COMPREPLY=($(compgen -W "--bundle --help" -- "$cur")) ;;
    esac
}
complete -F _llmreplay llmreplay
