from vidsynth.cli import main

main()
