using GoblinAspire.ModelRegistry;

return await ModelRegistryApp.Build(args).RunServiceAsync();
