from infra.stripe_standin.server import main

main()
