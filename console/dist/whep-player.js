import{a,b,c}from"./chunk-64C3FB05.js";export{a as WhepError,b as playWhep,c as publishWhip};
