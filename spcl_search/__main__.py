from spcl_search.cli import main

main()
