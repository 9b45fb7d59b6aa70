from msrkit.cli import main

main()
