from oumi_jobs.cli import main

main()
