from devtools.stripe_standin.server import main

main()
