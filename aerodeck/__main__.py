from aerodeck.cli.main import main

main()
