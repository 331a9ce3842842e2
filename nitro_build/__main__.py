from nitro_build.cli import main

main()
