from oumi_jobs.cli.app import main

main()
