_oumi_jobs_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _OUMI_JOBS_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _oumi_jobs_completion oumi-jobs
