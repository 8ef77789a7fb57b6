#compdef oumi-jobs

_oumi_jobs_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _OUMI_JOBS_COMPLETE=complete_zsh oumi-jobs)
}

compdef _oumi_jobs_completion oumi-jobs
