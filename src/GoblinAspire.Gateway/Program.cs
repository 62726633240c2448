using GoblinAspire.Gateway.Hosting;

return await GatewayApp.Build(args).RunServiceAsync();
